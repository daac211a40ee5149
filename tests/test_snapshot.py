"""envgen snapshot: fetch plan, hashing, resume after failures, concurrency, the snapshot id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from envgen.cli import main
from envgen.errors import EnvgenError
from envgen.lock import pylock
from envgen.snapshot import snapshot
from envgen.snapshot.store import Store


def snap(proj, store, **kw):
    return snapshot(store, pylock.load(proj.lock_path), **kw)


def test_snapshot_fetches_all_and_second_run_is_free(synth_project, tmp_path, capsys):
    st = tmp_path / "store"
    assert main(["snapshot", str(synth_project.lock_path), "--store", str(st), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["roles"] == {"build-deb": 1, "build-wheel": 1, "deb": 1, "local-source": 1, "lock": 1, "spec": 1,
                            "wheel": 2}
    assert out["fetched"] == 5 and out["present"] == 0
    hits = dict(synth_project.server.hits)
    assert "/files/alpha-1.0.tar.gz" not in hits  # sdists only with --with-sdists
    assert main(["snapshot", str(synth_project.lock_path), "--store", str(st), "--json"]) == 0
    out2 = json.loads(capsys.readouterr().out)
    assert out2["id"] == out["id"] and out2["fetched"] == 0 and out2["fetched_bytes"] == 0 and out2["present"] == 5
    assert dict(synth_project.server.hits) == hits
    store = Store(st)
    assert store.list_roots() == [out["id"]]
    manifest = json.loads(store.read_root(out["id"]))
    assert manifest["kind"] == "envgen-snapshot" and manifest["format-version"] == 1
    paths = {o["role"]: o.get("path") for o in manifest["objects"]}
    assert paths["lock"] == "specs/pylock.demo.toml" and paths["spec"] == "specs/demo.toml"
    assert paths["local-source"] == "app"
    assert store.verify().ok and not list(store.tmp.iterdir())


def test_id_is_independent_of_location_and_sdists_opt_in(synth_project, tmp_path):
    import shutil

    a = snap(synth_project, Store(tmp_path / "a"))
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(synth_project.root, moved)
    b = snapshot(Store(tmp_path / "b"), pylock.load(moved / "specs" / "pylock.demo.toml"))
    assert a.id == b.id
    c = snap(synth_project, Store(tmp_path / "a"), with_sdists=True)
    assert c.id != a.id and any(o["role"] == "sdist" for o in c.manifest["objects"])
    assert c.fetched == ["alpha-1.0.tar.gz"]


def test_local_source_changes_change_the_id(synth_project, tmp_path):
    st = Store(tmp_path / "s")
    a = snap(synth_project, st)
    (synth_project.app / "another.log").write_text("ignored by .gitignore\n")
    assert snap(synth_project, st).id == a.id
    (synth_project.app / "demo_app" / "__init__.py").write_text("VALUE = 2\n")
    assert snap(synth_project, st).id != a.id


def test_tampered_response_is_refused_and_nothing_kept(synth_project, tmp_path):
    synth_project.server.modes["/files/beta-2.0-py3-none-any.whl"] = "tamper"
    st = Store(tmp_path / "s")
    lock = pylock.load(synth_project.lock_path)
    beta = lock.package("beta").wheels[0]
    with pytest.raises(EnvgenError) as ei:
        snapshot(st, lock, retries=0)
    msg = str(ei.value)
    assert "beta-2.0-py3-none-any.whl" in msg and beta.sha256 in msg and "mismatch" in msg
    assert not st.has(beta.sha256)
    assert not list(st.tmp.iterdir()) and st.list_roots() == []
    for o in st.iter_objects():  # whatever was kept is whole and correct
        assert st.verify([o]).ok


def test_dropped_connection_leaves_nothing_and_resume_fetches_only_missing(synth_project, tmp_path):
    path = "/files/alpha-1.0-py3-none-any.whl"
    synth_project.server.modes[path] = "drop"
    st = Store(tmp_path / "s")
    lock = pylock.load(synth_project.lock_path)
    with pytest.raises(EnvgenError) as ei:
        snapshot(st, lock, retries=1)
    assert synth_project.server.url + path in str(ei.value)  # names the URL
    assert synth_project.server.hits[path] == 2  # one retry
    alpha = lock.package("alpha").wheels[0]
    assert not st.has(alpha.sha256) and not list(st.tmp.iterdir())
    before = dict(synth_project.server.hits)
    del synth_project.server.modes[path]
    res = snapshot(st, lock)
    assert res.fetched == [alpha.filename]
    after = dict(synth_project.server.hits)
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == {path: 1}


def test_http_error_names_url(synth_project, tmp_path, capsys):
    synth_project.server.modes["/files/libfoo1_1.0_amd64.deb"] = "404"
    rc = main(["snapshot", str(synth_project.lock_path), "--store", str(tmp_path / "s"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "libfoo1_1.0_amd64.deb" in err and "HTTP 404" in err and len(err.strip().splitlines()) == 1


def _subprocess_snapshot(lock_path, store, **kw):
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    return subprocess.Popen([sys.executable, "-m", "envgen", "snapshot", str(lock_path), "--store", str(store),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


def test_sigkill_mid_download_then_resume(synth_project, tmp_path):
    path = "/files/alpha-1.0-py3-none-any.whl"
    srv = synth_project.server
    srv.modes[path] = "stall"
    st = tmp_path / "s"
    proc = _subprocess_snapshot(synth_project.lock_path, st)
    try:
        assert srv.stalled.wait(20), "the download never started"
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.release.set()
    store = Store(st)
    alpha = pylock.load(synth_project.lock_path).package("alpha").wheels[0]
    assert not store.has(alpha.sha256)
    for o in store.iter_objects():
        assert store.verify([o]).ok
    del srv.modes[path]
    proc = _subprocess_snapshot(synth_project.lock_path, st)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    res = json.loads(out)
    assert store.has(alpha.sha256) and alpha.filename and res["fetched"] >= 1
    assert not list(store.tmp.iterdir())  # the killed run's partial file was cleaned
    assert store.verify().ok


def test_two_concurrent_snapshots_share_a_store(synth_project, tmp_path):
    for p in synth_project.artifacts:
        synth_project.server.modes[p] = "slow"
    st = tmp_path / "s"
    procs = [_subprocess_snapshot(synth_project.lock_path, st) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert results[0]["id"] == results[1]["id"]
    assert results[0]["fetched"] + results[1]["fetched"] == 5  # each artifact downloaded once
    assert all(synth_project.server.hits[p] == 1 for p in synth_project.artifacts if "tar.gz" not in p)
    store = Store(st)
    assert store.verify().ok and not list(store.tmp.iterdir())


def test_ctrl_c_mid_download_exits_promptly_and_keeps_nothing(synth_project, tmp_path):
    path = "/files/alpha-1.0-py3-none-any.whl"
    srv = synth_project.server
    srv.modes[path] = "stall"
    st = tmp_path / "s"
    proc = _subprocess_snapshot(synth_project.lock_path, st)
    try:
        assert srv.stalled.wait(20), "the download never started"
        time.sleep(0.3)
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:  # where is it stuck: faulthandler prints every thread's stack on SIGABRT
            proc.send_signal(signal.SIGABRT)
            out, err = proc.communicate(timeout=10)
            raise AssertionError(f"still running 15 s after SIGINT; its threads:\n{err[-6000:]}") from None
        assert time.monotonic() - t < 10
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.release.set()
    assert proc.returncode == 130 and "interrupted" in err
    store = Store(st)
    assert not list(store.tmp.iterdir()) and store.list_roots() == []
    for o in store.iter_objects():
        assert store.verify([o]).ok
