"""Locking real sdist-only projects from PyPI (marked: network, slow).

tests/fixtures/sdists/specs/sdists.toml: docopt 0.6.2 (no pyproject.toml: the
setuptools default), pyperclip (setuptools), crcmod 1.7 (a C extension), and
six built from source on request.  The build side reuses the same spec.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from envgen.lock import pylock
from helpers import REPO, require_tool, run_envgen

pytestmark = [pytest.mark.network, pytest.mark.slow]

SPEC = REPO / "tests" / "fixtures" / "sdists" / "specs" / "sdists.toml"


@pytest.fixture(scope="module")
def sdists_lock(tmp_path_factory):
    require_tool("bwrap")
    root = tmp_path_factory.mktemp("sdists")
    spec = root / "sdists.toml"
    shutil.copy(SPEC, spec)
    first = json.loads(run_envgen("lock", str(spec), "--json", check=True).stdout)
    b1 = (root / "pylock.sdists.toml").read_bytes()
    human = run_envgen("lock", str(spec), check=True)
    b2 = (root / "pylock.sdists.toml").read_bytes()
    return spec, root / "pylock.sdists.toml", b1, b2, first, human


def test_source_builds_are_locked(sdists_lock):
    _, path, b1, b2, first, human = sdists_lock
    assert b1 == b2  # locking twice gives the same bytes
    lock = pylock.load(path)
    builds = {b.name: b for b in lock.source_builds}
    assert {n: b.reason for n, b in builds.items()} == {
        "crcmod": "no-wheel", "docopt": "no-wheel", "pyperclip": "no-wheel", "six": "from-source"}
    assert builds["docopt"].version == "0.6.2" and builds["crcmod"].version == "1.7"
    for b in builds.values():
        assert b.backend == "setuptools.build_meta:__legacy__" and b.backend_path == []
        assert b.requires and all(re.fullmatch(r"[a-z0-9-]+==\S+", r) for r in b.requires)
        assert any(r.startswith("setuptools==") for r in b.requires), b.requires
        for name, version in b.pins():
            tool = lock.build_tool(name, version)
            assert tool is not None, (b.name, name, version)
            assert len(tool.wheels) == 1 and re.fullmatch(r"[0-9a-f]{64}", tool.wheels[0].sha256)
            assert tool.wheels[0].upload_time <= lock.snapshot_date
        # the [[packages]] entry keeps its sdist and no wheel
        p = lock.package(b.name)
        assert p.wheels == [] and p.sdist is not None and re.fullmatch(r"[0-9a-f]{64}", p.sdist.sha256)
    assert {p.name for p in lock.build_tools} >= {"installer", "packaging", "pyproject-hooks", "setuptools"}
    assert [s["name"] for s in first["source_builds"]] == ["crcmod", "docopt", "pyperclip", "six"]
    assert "built from source: crcmod 1.7 (no wheel for the target" in human.stdout
    assert "built from source: six 1.17.0 ([build] from-source" in human.stdout


def test_debian_build_packages(sdists_lock):
    _, path, *_ = sdists_lock
    lock = pylock.load(path)
    deb = {d.name: d for d in lock.debian.packages}
    assert set(lock.debian.build_roots) >= {"gcc", "libc6-dev", "python3.11-dev", "busybox-static"}
    for name in ("gcc", "gcc-12", "libc6-dev", "python3.11-dev", "libpython3.11-dev"):
        assert deb[name].role == "build", name
    for name in ("python3.11", "libc6", "libpython3.11-stdlib"):
        assert deb[name].role == "runtime", name


def test_graph_why_show_build_edges(sdists_lock):
    spec, *_ = sdists_lock
    out = run_envgen("why", str(spec), "setuptools", check=True).stdout
    assert "sdists (env) -> crcmod 1.7 =build=> setuptools" in out
    out = run_envgen("why", str(spec), "gcc", check=True).stdout
    assert "crcmod 1.7 =build=> gcc" in out
    data = json.loads(run_envgen("graph", str(spec), "--json", check=True).stdout)
    assert any(e[0] == "py:docopt" and e[1].startswith("build:setuptools==") and e[2] == "build"
               for e in data["edges"])


def test_relock_runs_no_hook_again(sdists_lock, tmp_path):
    """The hooks' answers are cached by (source sha256, pinned tools): a fresh spec copy re-locks the same."""
    spec, path, b1, *_ = sdists_lock
    other = tmp_path / "sdists.toml"
    shutil.copy(spec, other)
    run_envgen("lock", str(other), check=True)
    assert (tmp_path / "pylock.sdists.toml").read_bytes() == b1


def test_in_tree_backend_with_dynamic_requirements(write_spec):
    """A local project whose in-tree backend (backend-path) asks for more at get_requires_for_build_wheel."""
    require_tool("bwrap")
    spec = write_spec('name = "intree"\nsnapshot-date = 2025-05-08T00:00:00Z\npython = "3.11"\n'
                      'requirements = ["six"]\nlocal = ["../proj"]\n', name="intree")
    proj = spec.parent.parent / "proj"
    (proj / "_backend").mkdir(parents=True)
    (proj / "intree").mkdir()
    (proj / "intree" / "__init__.py").write_text("")
    (proj / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "intree_backend"\nbackend-path = ["_backend"]\n'
        '[project]\nname = "intree"\nversion = "0.1"\n')
    (proj / "_backend" / "intree_backend.py").write_text(
        "import os, socket\n"
        "def get_requires_for_build_wheel(config_settings=None):\n"
        "    assert os.environ['SOURCE_DATE_EPOCH'] == '1746662400'\n"
        "    try:\n"
        "        socket.create_connection(('pypi.org', 443), timeout=3)\n"
        "        online = True\n"
        "    except OSError:\n"
        "        online = False\n"
        "    return ['flit_core>=3.2,<4'] + (['the-network-was-reachable'] if online else [])\n")
    run_envgen("lock", str(spec), check=True)
    lock = pylock.load(spec.parent / "pylock.intree.toml")
    (b,) = lock.source_builds
    assert (b.name, b.reason, b.backend, b.backend_path) == ("intree", "local", "intree_backend", ["_backend"])
    assert [n for n, _ in b.pins()] == ["flit-core"]  # from the hook, resolved; and the network was cut
    assert lock.build_tool(*b.pins()[0]) is not None
    assert not [d for d in lock.debian.packages if d.name == "gcc"]  # a local build alone adds no compiler


def test_no_wheel_and_no_sdist_is_one_line(write_spec):
    spec = write_spec('name = "win"\nsnapshot-date = 2025-05-08T00:00:00Z\npython = "3.11"\n'
                      'requirements = ["pywin32"]\n', name="win")
    proc = run_envgen("lock", str(spec))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pywin32" in lines[0], proc.stderr
    assert not (spec.parent / "pylock.win.toml").exists()


def test_from_source_name_not_in_the_resolution(write_spec):
    spec = write_spec('name = "fs"\nsnapshot-date = 2025-05-08T00:00:00Z\npython = "3.11"\n'
                      'requirements = ["six"]\n[build]\nfrom-source = ["numpy"]\n', name="fs")
    proc = run_envgen("lock", str(spec))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'build.from-source'" in lines[0] and "numpy" in lines[0], proc.stderr
