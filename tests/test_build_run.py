"""Embedded builder and `envgen run` end to end, on a tiny spec (marked network + slow).

The spec (tests/fixtures/tiny) has the Debian Python runtime, two small wheels
and a local project built by its pinned build backend; it is locked and
snapshotted from the real PyPI and Debian archive once per session.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from helpers import run_envgen

pytestmark = [pytest.mark.network, pytest.mark.slow]


def envgen_run(t, *args, **kw):
    return run_envgen("run", str(t.spec), "--store", str(t.store), *args, **kw)


def test_build_is_cached_and_reproducible_from_a_cleared_cache(tiny):
    first = tiny.built
    assert len(first["tree_digest"]) == 64 and first["cached"] is False
    again = json.loads(run_envgen("build", str(tiny.spec), "--store", str(tiny.store), "--json", check=True).stdout)
    assert again["cached"] is True and again["tree_digest"] == first["tree_digest"]
    # cleared cache: the tree is removed and rebuilt, with the network cut
    proc = subprocess.run(["unshare", "-n", *map(str, [os.sys.executable, "-m", "envgen", "build", tiny.spec,
                                                       "--store", tiny.store, "--force", "--json"])],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rebuilt = json.loads(proc.stdout)
    assert rebuilt["cached"] is False and rebuilt["network_isolated"] is True
    assert rebuilt["tree_digest"] == first["tree_digest"]
    assert rebuilt["key"] == first["key"]


def test_the_tree_does_not_depend_on_uv(tiny, tmp_path):
    """uv only resolves: a build with uv impossible to import gives the same tree (pypa installer installs)."""
    blocker = tmp_path / "no-uv"
    (blocker / "uv").mkdir(parents=True)
    (blocker / "uv" / "__init__.py").write_text("raise ImportError('uv is not available to this build')\n")
    store = tmp_path / "store"
    shutil.copytree(tiny.store / "objects", store / "objects")  # the snapshot's objects, nothing built
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(["unshare", "-n", os.sys.executable, "-m", "envgen", "build", str(tiny.spec), "--store",
                           str(store), "--json"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tree_digest"] == tiny.built["tree_digest"]
    site = Path(tiny.built["path"], "opt/env/lib/python3.11/site-packages")
    assert {p.read_text() for p in site.glob("*.dist-info/INSTALLER")} == {"envgen\n"}
    assert not list(site.glob("*.dist-info/uv_*.json")) and not Path(tiny.built["path"], "opt/env/.lock").exists()


def test_tree_has_no_host_paths_and_clamped_mtimes(tiny):
    rootfs = Path(tiny.built["path"])
    epoch = 1746662400  # 2025-05-08T00:00:00Z
    needles = [str(tiny.root).encode(), str(tiny.store).encode(), b"/root/", b"pytest-of-"]
    checked = 0
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            assert int(st.st_mtime) == epoch, p
            if stat.S_ISREG(st.st_mode) and "/opt/env/" in p and st.st_size < 2_000_000:
                data = open(p, "rb").read()
                for n in needles:
                    assert n not in data, (p, n)
                checked += 1
    assert checked > 50
    assert (rootfs / ".envgen" / "pylock.toml").is_file()
    assert os.readlink(rootfs / "opt/env/bin/python") == "/usr/bin/python3.11"
    # bytecode is hash-based and unchecked: independent of mtimes
    site = rootfs / "opt/env/lib/python3.11/site-packages"
    pyc = next(site.glob("__pycache__/six*.pyc"))
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b01


def test_run_uses_the_envs_python_and_locked_versions(tiny):
    proc = envgen_run(tiny, "--", "python", "-c",
                      "import six, sys, hello; print(six.__version__, sys.prefix, sys.executable)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1.17.0 /opt/env /opt/env/bin/python"
    proc = envgen_run(tiny)  # the spec's default command: the local project's console script
    assert proc.returncode == 0 and "hello from /opt/env" in proc.stdout


def test_run_is_isolated(tiny):
    code = ("import socket, os; print(socket.if_nameindex()); "
            "print(os.path.exists('/work'), os.path.exists(os.path.expanduser('~/.cache')), os.getcwd())")
    proc = envgen_run(tiny, "--", "python", "-c", code)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "[(1, 'lo')]"
    assert lines[1] == "False False /"
    proc = envgen_run(tiny, "--network", "--", "python", "-c", "import socket; print(len(socket.if_nameindex()))")
    assert proc.returncode == 0


def test_tree_is_read_only_and_binds_behave(tiny, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("input\n")
    out = tmp_path / "out"
    out.mkdir()
    code = ("import pathlib, sys\n"
            "print(pathlib.Path('/data/in.txt').read_text().strip())\n"
            "pathlib.Path('/out/o.txt').write_text('written\\n')\n"
            "for p in ('/data/x', '/opt/env/x', '/x'):\n"
            "    try:\n        open(p, 'w')\n        print('WROTE', p)\n"
            "    except OSError as e:\n        print('refused', p)\n")
    proc = envgen_run(tiny, "--bind", f"{data}:/data:ro", "--bind", f"{out}:/out", "--", "python", "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["input", "refused /data/x", "refused /opt/env/x", "refused /x"]
    assert (out / "o.txt").read_text() == "written\n"


def test_exit_codes_and_signals_pass_through(tiny):
    assert envgen_run(tiny, "--", "python", "-c", "raise SystemExit(7)").returncode == 7
    proc = envgen_run(tiny, "--", "python", "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert proc.returncode == 128 + 15


def test_records_and_rerun(tiny, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "params.txt").write_text("seed=3\n")
    out = tmp_path / "out"
    out.mkdir()
    proc = envgen_run(tiny, "--bind", f"{data}:/data:ro", "--bind", f"{out}:/out", "--label", "seed3",
                      "--reason", "test", "--tag", "t1", "--json", "--", "hello", "--out", "/out", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    run_id = summary["run"]
    listed = json.loads(run_envgen("runs", "--store", str(tiny.store), "--json", check=True).stdout)["runs"]
    rec = next(r for r in listed if r["id"] == run_id)
    assert rec["label"] == "seed3" and rec["tags"] == ["t1"] and rec["exit_status"] == 0
    assert rec["tree_digest"] == tiny.built["tree_digest"] and rec["snapshot_id"] == tiny.built["snapshot_id"]
    assert set(rec["inputs"]) == {"/data/params.txt"}
    assert set(rec["outputs"]) == {"/out/results.csv", "/out/run.log"}
    assert rec["host"]["cores"] >= 1 and rec["command"] == ["hello", "--out", "/out", "--seed", "3"]
    run_envgen("runs", "--store", str(tiny.store), "comment", run_id[:19], "first try", check=True)
    run_envgen("runs", "--store", str(tiny.store), "tag", run_id, "paper", check=True)
    shown = json.loads(run_envgen("runs", "--store", str(tiny.store), "show", run_id, "--json", check=True).stdout)
    assert shown["tags"] == ["paper", "t1"] and shown["comments"][0]["text"] == "first try"

    rr = run_envgen("rerun", run_id, "--store", str(tiny.store), "--json")
    assert rr.returncode == 0, rr.stdout + rr.stderr
    result = json.loads(rr.stdout)
    status = {f["path"]: f["status"] for f in result["comparison"]["files"]}
    assert result["comparison"]["verdict"] == "identical"
    assert status["/out/results.csv"] in ("identical", "identical-except-nondeterministic")
    assert status["/out/run.log"].startswith("nondeterministic")


def test_rerun_reports_differing_outputs(tiny, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = envgen_run(tiny, "--bind", f"{out}:/out", "--json", "--", "hello", "--out", "/out", "--noise")
    run_id = json.loads(proc.stdout)["run"]
    rr = run_envgen("rerun", run_id, "--store", str(tiny.store))
    assert rr.returncode == 1
    assert "differing" in rr.stdout and "/out/noise.bin" in rr.stdout


def test_bad_input(tiny, tmp_path):
    # missing store object: an empty store
    empty = tmp_path / "empty-store"
    proc = run_envgen("build", str(tiny.spec), "--store", str(empty))
    assert proc.returncode == 2 and "missing" in proc.stderr and "envgen snapshot" in proc.stderr
    # corrupted store object
    bad = tmp_path / "bad-store"
    shutil.copytree(tiny.store / "objects", bad / "objects")
    shutil.copytree(tiny.store / "roots", bad / "roots")
    shutil.copy(tiny.store / "envgen-store.json", bad / "envgen-store.json")
    from envgen.lock import pylock

    six_sha = pylock.load(tiny.spec.parent / "pylock.tiny.toml").package("six").wheels[0].sha256
    obj = bad / "objects" / "sha256" / six_sha
    os.chmod(obj, 0o644)
    data = bytearray(obj.read_bytes())
    data[100] ^= 0xFF
    obj.write_bytes(bytes(data))
    proc = run_envgen("build", str(tiny.spec), "--store", str(bad))
    assert proc.returncode == 2 and "corrupted" in proc.stderr and "six" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (bad / "trees").exists() or not any((bad / "trees").iterdir())
    # checked while the sandbox installed it: no unit of it, nor of the bytecode compiled with it, published
    kinds = [json.loads((d / "meta.json").read_text())["unit"] for d in (bad / "units").iterdir()]
    assert kinds and set(kinds) == {"deb"}, kinds
    # bind source that does not exist; command not found
    proc = envgen_run(tiny, "--bind", f"{tmp_path}/nope:/data", "--", "true")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = envgen_run(tiny, "--", "no-such-command")
    assert proc.returncode == 2 and "not found inside the env" in proc.stderr


def test_run_notices_a_changed_local_project(tiny):
    """The start-up fast path must not serve a stale env: editing the local project rebuilds."""
    src = tiny.root / "proj" / "hello" / "hello" / "__init__.py"
    original = src.read_text()
    assert envgen_run(tiny).stdout.startswith("hello from /opt/env")  # warm: served by the fast path
    try:
        src.write_text(original.replace('print("hello from", sys.prefix)', 'print("HELLO again from", sys.prefix)'))
        proc = envgen_run(tiny)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("HELLO again from /opt/env")
    finally:
        src.write_text(original)
    proc = envgen_run(tiny, "--json")
    assert json.loads(proc.stdout)["tree_digest"] == tiny.built["tree_digest"]
