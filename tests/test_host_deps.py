"""scripts/host-deps and ./dev: the Debian packages each job needs, and what happens when some are missing."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers import REPO, require_tool

HOST_DEPS = REPO / "scripts" / "host-deps"


def listing(job: str) -> list[str]:
    return subprocess.run([str(HOST_DEPS), "--list", job], capture_output=True, text=True, check=True).stdout.split()


def test_lists_are_debian_names_each_with_a_reason():
    demo, test = listing("demo"), listing("test")
    for name in ("python3", "python3-venv", "make", "ca-certificates", "bubblewrap", "apt", "debian-archive-keyring"):
        assert name in demo
    assert test[: len(demo)] == demo  # the tests need everything the demo does
    for name in ("git", "nix-bin", "slurmctld", "podman", "umoci", "siftool", "disorderfs", "debootstrap", "pipx"):
        assert name in test
    assert len(set(test)) == len(test) and all(re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", n) for n in test)
    text = HOST_DEPS.read_text()
    for name in test:  # one line per package, with a comment saying why
        assert re.search(rf"^{re.escape(name)} +# \S", text, re.M), name


@pytest.fixture
def admindir():
    """An empty dpkg database that an unprivileged user can read (pytest's tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(prefix="host-deps-") as d:
        os.chmod(d, 0o755)
        (Path(d) / "status").write_text("")
        yield Path(d)


def as_unprivileged(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    require_tool("setpriv")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]


@pytest.mark.parametrize("entry", [[str(HOST_DEPS)], [str(REPO / "dev")]])
def test_not_root_names_the_sudo_command_for_what_is_missing(admindir, entry):
    """Against an empty dpkg database (DPKG_ADMINDIR) every package is missing; nothing is installed."""
    require_tool("dpkg-query")
    env = {**os.environ, "DPKG_ADMINDIR": str(admindir)}
    proc = subprocess.run(as_unprivileged([*entry, "demo"]), capture_output=True, text=True, env=env,
                          cwd="/", timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("host-deps: missing Debian packages for 'demo'; install them with: "
                           f"sudo apt-get install -y {' '.join(listing('demo'))}\n")


def test_installed_packages_are_not_asked_for(admindir):
    """Packages dpkg reports installed drop out of the line; the check itself is quick."""
    require_tool("dpkg-query")
    status = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", "make"], capture_output=True, text=True)
    if status.stdout != "install ok installed":
        pytest.skip("make is not installed here")
    # a dpkg database holding only make's entry, copied from the host's
    entry = subprocess.run(["dpkg-query", "-s", "make"], capture_output=True, text=True, check=True).stdout
    (admindir / "status").write_text(entry.rstrip("\n") + "\n\n")
    env = {**os.environ, "DPKG_ADMINDIR": str(admindir)}
    proc = subprocess.run(as_unprivileged([str(HOST_DEPS), "demo"]), capture_output=True, text=True, env=env,
                          cwd="/", timeout=60)
    wanted = [n for n in listing("demo") if n != "make"]
    assert proc.returncode == 2
    assert proc.stderr.endswith(f"sudo apt-get install -y {' '.join(wanted)}\n")


def test_unknown_job_is_refused():
    proc = subprocess.run([str(REPO / "dev"), "deploy"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr == "usage: ./dev demo|test\n"
