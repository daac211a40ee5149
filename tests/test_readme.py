"""The README's path from a requirements.txt to a verified bundle: its five commands, run as written.

The commands are read from README.md (the block under "From a requirements.txt
to a verified bundle"), so the README cannot drift from what works.  They run
in order, in an empty directory holding a one-package requirements.txt, with
a store of their own; the last one must say the bundle is Reproduced.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest

from helpers import ENVGEN, REPO, require_tool

SECTION = "## From a requirements.txt to a verified bundle"


def readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    assert SECTION in text, "the README lost its requirements.txt-to-bundle section"
    block = text.split(SECTION, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_the_readme_shows_five_envgen_commands_from_requirements_to_verify():
    cmds = readme_commands()
    assert len(cmds) == 5 and all(c[0] == "envgen" for c in cmds)
    assert cmds[0][1:3] == ["init", "requirements.txt"] and cmds[-1][1] == "verify"


@pytest.mark.network
@pytest.mark.slow
def test_the_readme_commands_work_in_order(tmp_path):
    require_tool("bwrap", "unshare", why="envgen build, run and verify use bubblewrap and a network namespace")
    (tmp_path / "requirements.txt").write_text("six==1.17.0\n")
    env = {**os.environ, "ENVGEN_STORE": str(tmp_path / "store")}
    cmds = readme_commands()
    for cmd in cmds[:-1]:
        proc = subprocess.run([*ENVGEN, *cmd[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, f"{shlex.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    proc = subprocess.run([*ENVGEN, *cmds[-1][1:], "--json"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"{shlex.join(cmds[-1])} failed:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(proc.stdout)
    assert result["runs"] == 1 and result["level"] == "reproduced", result
