"""The demo's fallback when a pinned .deb is gone from both its URLs.

`envgen snapshot --json` fails with a typed error (``FetchError`` and the
artifacts it could not fetch, in the JSON error document), and
scripts/demo_snapshot.py decides from that document alone whether a re-lock
of a copy can help: only when every failed artifact is a .deb its mirror
answered with an HTTP 4xx.  Offline here, against the local file server; the
last test runs the whole fallback (a real re-lock) on the tiny env.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys

import pytest

from envgen.lock import pylock
from envgen.snapshot.store import Store
from helpers import ENVGEN, REPO, run_envgen

SCRIPT = REPO / "scripts" / "demo_snapshot.py"
_spec = importlib.util.spec_from_file_location("demo_snapshot", SCRIPT)
assert _spec is not None and _spec.loader is not None
demo_snapshot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo_snapshot)


def unreachable(path: str) -> str:
    """A URL on a local port nothing listens on (as snapshot.debian.org is when it cannot be reached)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def set_deb_urls(lock_path, name: str, url: str | None = None, snapshot_url: str | None = None,
                 sha256: str | None = None) -> pylock.DebPackage:
    """Rewrite one .deb of a lock file in place; returns the new entry."""
    lock = pylock.load(lock_path)
    new = None
    for i, d in enumerate(lock.debian.packages):
        if d.name == name:
            new = dataclasses.replace(d, url=url or d.url, snapshot_url=snapshot_url or d.snapshot_url,
                                      sha256=sha256 or d.sha256)
            lock.debian.packages[i] = new
    assert new is not None, name
    lock_path.write_text(pylock.dumps(lock))
    return new


def gone(proj, name: str) -> pylock.DebPackage:
    """The .deb *name* of the synth project: 404 on the mirror, its snapshot URL unreachable."""
    d = next(d for d in pylock.load(proj.lock_path).debian.packages if d.name == name)
    proj.server.modes[f"/files/{os.path.basename(d.filename)}"] = "404"
    return set_deb_urls(proj.lock_path, name, snapshot_url=unreachable(f"/archive/debian/x/{name}.deb"))


def snapshot_json(proj, store):
    proc = run_envgen("snapshot", str(proj.lock_path), "--store", str(store), "--json", timeout=120)
    return proc, json.loads(proc.stdout)


def test_deb_gone_from_both_urls_is_a_typed_fetch_error(synth_project, tmp_path):
    deb = gone(synth_project, "libfoo1")
    proc, doc = snapshot_json(synth_project, tmp_path / "s")
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "libfoo1_1.0_amd64.deb" in err[0] and "HTTP 404" in err[0], proc.stderr
    e = doc["error"]
    assert e["type"] == "FetchError" and e["hint"] and "libfoo1_1.0_amd64.deb" in e["message"]
    [art] = e["artifacts"]
    assert (art["name"], art["role"], art["package"], art["sha256"]) == ("libfoo1_1.0_amd64.deb", "deb", "libfoo1",
                                                                         deb.sha256)
    mirror, snap = art["attempts"]
    assert (mirror["url"], mirror["status"]) == (deb.url, 404)
    assert (snap["url"], snap["status"]) == (deb.snapshot_url, None) and snap["reason"]
    # the other artifacts were fetched all the same (a re-run resumes), and no snapshot root was written
    store = Store(tmp_path / "s")
    lock = pylock.load(synth_project.lock_path)
    others = [w.sha256 for p in lock.packages + lock.build_tools for w in p.wheels]
    others += [d.sha256 for d in lock.debian.packages if d.name != "libfoo1"]
    assert len(others) == 4 and all(store.has(s) for s in others)
    assert not store.has(deb.sha256) and store.list_roots() == []


def test_every_failed_artifact_is_named_in_one_error(synth_project, tmp_path):
    gone(synth_project, "libfoo1")
    gone(synth_project, "busybox-static")
    synth_project.server.modes["/files/beta-2.0-py3-none-any.whl"] = "404"
    proc, doc = snapshot_json(synth_project, tmp_path / "s")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    e = doc["error"]
    assert [(a["name"], a["role"]) for a in e["artifacts"]] == [
        ("beta-2.0-py3-none-any.whl", "wheel"), ("busybox-static_1.0_amd64.deb", "build-deb"),
        ("libfoo1_1.0_amd64.deb", "deb")]
    assert e["message"].startswith("cannot fetch 3 artifacts: beta-2.0-py3-none-any.whl, busybox-static_1.0_amd64.deb")


def test_other_errors_are_typed_in_json_too(tmp_path):
    proc = run_envgen("snapshot", str(tmp_path / "nowhere.toml"), "--json")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    e = json.loads(proc.stdout)["error"]
    assert e["type"] == "EnvgenError" and "nowhere.toml" in e["message"] and "artifacts" not in e


@pytest.mark.parametrize("case, expected", [
    ("deb", ["libfoo1"]),
    ("both-debs", ["busybox-static", "libfoo1"]),
    ("deb-no-snapshot-url", ["libfoo1"]),  # a lock made without a snapshot URL: the mirror's 404 is the answer
    ("wheel", None),  # a PyPI file: a re-lock of the same spec would pin it again
    ("deb-and-wheel", None),
    ("mirror-unreachable", None),  # the network is down, the .deb may well be there: a re-lock cannot help
    ("mirror-cut-short", None),  # served, but cut short: a transient failure, not a gone file
])
def test_fallback_decision_reads_the_error_document(synth_project, tmp_path, case, expected):
    srv = synth_project.server
    if case in ("deb", "both-debs", "deb-and-wheel"):
        gone(synth_project, "libfoo1")
    if case == "both-debs":
        gone(synth_project, "busybox-static")
    if case == "deb-no-snapshot-url":
        srv.modes["/files/libfoo1_1.0_amd64.deb"] = "404"
    if case in ("wheel", "deb-and-wheel"):
        srv.modes["/files/beta-2.0-py3-none-any.whl"] = "404"
    if case == "mirror-unreachable":
        set_deb_urls(synth_project.lock_path, "libfoo1", url=unreachable("/debian/libfoo1.deb"),
                     snapshot_url=unreachable("/archive/libfoo1.deb"))
    if case == "mirror-cut-short":
        srv.modes["/files/libfoo1_1.0_amd64.deb"] = "drop"
    proc, doc = snapshot_json(synth_project, tmp_path / "s")
    assert proc.returncode == 2 and doc["error"]["type"] == "FetchError"
    assert demo_snapshot.gone_debs(doc) == expected


def test_fallback_decision_ignores_other_documents():
    assert demo_snapshot.gone_debs(None) is None
    assert demo_snapshot.gone_debs({"id": "x"}) is None
    assert demo_snapshot.gone_debs({"error": {"type": "LockError", "message": "m", "hint": None}}) is None
    assert demo_snapshot.gone_debs({"error": {"type": "FetchError", "artifacts": []}}) is None


def run_script(*args, store, env=None):
    full = {**os.environ, "ENVGEN_STORE": str(store), **(env or {})}
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args), "--envgen", shlex.join(ENVGEN)],
                          capture_output=True, text=True, env=full, timeout=120)


def test_demo_snapshot_passes_the_spec_through_when_all_is_served(synth_project, tmp_path):
    proc = run_script(synth_project.lock_path, tmp_path / "out", store=tmp_path / "s")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{synth_project.lock_path}\n"
    assert proc.stderr.startswith("snapshot ") and "fetched 5 " in proc.stderr
    assert not (tmp_path / "out").exists()


def test_demo_snapshot_does_not_relock_for_a_gone_wheel(synth_project, tmp_path):
    synth_project.server.modes["/files/beta-2.0-py3-none-any.whl"] = "404"
    before = synth_project.lock_path.read_bytes()
    proc = run_script(synth_project.lock_path, tmp_path / "out", store=tmp_path / "s")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "beta-2.0-py3-none-any.whl" in proc.stderr and "notice" not in proc.stderr
    assert synth_project.lock_path.read_bytes() == before and not (tmp_path / "out" / "relock").exists()


def test_copy_project_keeps_the_layout_and_replaces_only_its_own_copies(abide_checkout, tmp_path):
    spec = abide_checkout / "specs" / "abide.toml"
    (abide_checkout / "pipelines" / "abide" / "__pycache__").mkdir()
    (abide_checkout / "pipelines" / "abide" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    dest = tmp_path / "out" / "relock"
    copy = demo_snapshot.copy_project(spec, dest)
    assert copy == dest / "specs" / "abide.toml" and copy.read_bytes() == spec.read_bytes()
    pipe = dest / "pipelines" / "abide"
    assert (pipe / "pyproject.toml").read_bytes() == (abide_checkout / "pipelines/abide/pyproject.toml").read_bytes()
    assert (pipe / "abide_pipeline" / "__init__.py").is_file() and not (pipe / "__pycache__").exists()
    (dest / "specs" / "pylock.abide.toml").write_text("stale\n")
    assert demo_snapshot.copy_project(spec, dest) == copy  # an earlier copy is replaced whole
    assert not (dest / "specs" / "pylock.abide.toml").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("mine\n")
    with pytest.raises(demo_snapshot.Refused, match="not an earlier re-lock copy"):
        demo_snapshot.copy_project(spec, other)
    assert (other / "keep.txt").read_text() == "mine\n"


@pytest.mark.network
@pytest.mark.slow
def test_demo_relocks_a_copy_when_a_pinned_deb_is_gone(tiny, tmp_path, file_server):
    """The whole fallback: the committed lock names a .deb no URL serves; the demo goes on with a re-locked copy."""
    proj = tmp_path / "proj"
    shutil.copytree(tiny.root / "proj", proj)
    lock_path = proj / "specs" / "pylock.tiny.toml"
    real = next(d for d in pylock.load(lock_path).debian.packages if d.role == "runtime")
    # a build the mirror has dropped: another sha256 (so the shared store lacks it), a 404, snapshot unreachable
    set_deb_urls(lock_path, real.name, url=file_server.url + "/debian/gone.deb",
                 snapshot_url=unreachable("/archive/gone.deb"), sha256=hashlib.sha256(b"gone").hexdigest())
    committed = lock_path.read_bytes()
    out = tmp_path / "out"
    proc = run_script(proj / "specs" / "tiny.toml", out, store=tiny.store)
    assert proc.returncode == 0, proc.stderr
    copy = out / "relock" / "specs" / "tiny.toml"
    assert proc.stdout == f"{copy}\n"
    notices = [line for line in proc.stderr.splitlines() if line.startswith("notice:")]
    assert len(notices) == 1 and real.name in notices[0] and "differs from the committed lock" in notices[0]
    assert lock_path.read_bytes() == committed  # never rewritten
    relocked = pylock.load(out / "relock" / "specs" / "pylock.tiny.toml")
    again = next(d for d in relocked.debian.packages if d.name == real.name)
    assert again.sha256 != hashlib.sha256(b"gone").hexdigest() and again.url.startswith("http")
    assert (out / "relock" / "hello" / "pyproject.toml").is_file()
    built = run_envgen("build", str(copy), "--store", str(tiny.store), "--json", timeout=900)
    assert built.returncode == 0, built.stderr
