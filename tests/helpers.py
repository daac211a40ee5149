"""Helpers shared by the test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ENVGEN = [sys.executable, "-m", "envgen"]


def missing_tools(*names: str) -> list[str]:
    """The tools of ``names`` found neither on PATH nor in /usr/sbin or /sbin."""
    return [n for n in names if not (shutil.which(n) or any(Path(d, n).exists() for d in ("/usr/sbin", "/sbin")))]


def require_tool(*names: str, why: str = "") -> None:
    """Skip the calling test when a tool is missing here, but FAIL it on CI (``CI`` set).

    A developer's machine may lack bwrap, nix, podman, umoci, skopeo, mksquashfs,
    siftool or slurmctld; CI installs them all (.ci/run), so a missing tool there
    is a broken setup, not a reason to pass quietly.  Also as a marker:
    ``@pytest.mark.requires_tool("podman", "runc")`` (tests/conftest.py).
    """
    missing = missing_tools(*names)
    if not missing:
        return
    message = f"not installed: {', '.join(missing)}" + (f" ({why})" if why else "")
    if os.environ.get("CI"):
        pytest.fail(message + "; CI is set, so a missing tool fails the test", pytrace=False)
    pytest.skip(message)


def run_envgen(*args: str, cwd: Path | None = None, env: dict | None = None, check: bool = False,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the envgen CLI in a subprocess, as a user would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([*ENVGEN, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"envgen {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_lock(py: dict[str, tuple[str, list[str]]] | None = None, debs: dict[str, str] | None = None,
              name: str = "demo", base_url: str = "https://files.example.org"):
    """A small synthetic Lock: py = {name: (version, [deps])}, debs = {name: version}."""
    import datetime as dt
    import hashlib

    from envgen.lock import pylock

    def sha(s: str) -> str:
        return hashlib.sha256(s.encode()).hexdigest()

    date = dt.datetime(2025, 5, 8, tzinfo=dt.UTC)
    packages = []
    for pname, (ver, deps) in sorted((py or {}).items()):
        fn = f"{pname.replace('-', '_')}-{ver}-py3-none-any.whl"
        packages.append(pylock.PyPackage(
            name=pname, version=ver, index="https://pypi.org/simple", dependencies=list(deps),
            wheels=[pylock.Artifact("wheel", fn, f"{base_url}/{fn}", sha(fn), 10, date - dt.timedelta(days=1))],
        ))
    deb_pkgs = [
        pylock.DebPackage(
            name=d, version=v, architecture="amd64", filename=f"pool/main/x/{d}/{d}_{v}_amd64.deb", size=10,
            sha256=sha(d + v), archive="debian", url=f"{base_url}/{d}_{v}_amd64.deb", snapshot_url="", role="runtime",
        )
        for d, v in sorted((debs or {}).items())
    ]
    return pylock.Lock(
        name=name, spec=f"{name}.toml", spec_sha256=sha(name), snapshot_date=date, python="3.11",
        platforms=["linux-x86_64"], envgen_version="0", uv_version="0", index="https://pypi.org/simple",
        roots=sorted(n for n in (py or {}) if not any(n in deps for _, deps in (py or {}).values())),
        packages=packages, build_tools=[],
        debian=pylock.Debian("debian/bookworm", "amd64", sorted(debs or {})[:1], [], [], deb_pkgs),
    )
