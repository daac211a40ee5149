"""The content-addressed store: atomic objects, verify, gc, locks, source packing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile

import pytest

from envgen.cli import main
from envgen.errors import EnvgenError
from envgen.snapshot import srcpack
from envgen.snapshot.store import HashMismatch, Store


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_layout_and_add(tmp_path):
    st = Store(tmp_path / "s")
    for d in ("objects/sha256", "tmp", "roots", "locks"):
        assert (st.root / d).is_dir()
    meta = json.loads((st.root / "envgen-store.json").read_text())
    assert meta == {"format-version": 1, "kind": "envgen-store"}
    s1 = st.add_bytes(b"hello")
    assert s1 == sha(b"hello") and st.has(s1)
    assert oct(st.path_of(s1).stat().st_mode & 0o777) == "0o444"
    with st.open(s1) as fh:
        assert fh.read() == b"hello"
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 3_000_000)
    s2 = st.add_file(f)
    assert st.path_of(s2).read_bytes() == f.read_bytes()
    assert st.add_file(f, expected_sha=s2) == s2  # already present: no-op
    assert not list(st.tmp.iterdir())


def test_hash_mismatch_keeps_nothing(tmp_path):
    st = Store(tmp_path / "s")
    f = tmp_path / "f"
    f.write_bytes(b"content")
    with pytest.raises(HashMismatch) as ei:
        st.add_file(f, expected_sha="0" * 64, label="f.whl")
    assert "f.whl" in str(ei.value) and "0" * 64 in str(ei.value) and sha(b"content") in str(ei.value)
    assert list(st.iter_objects()) == [] and not list(st.tmp.iterdir())


def test_refuses_newer_store_and_foreign_dir(tmp_path):
    root = tmp_path / "s"
    Store(root)
    (root / "envgen-store.json").write_text('{"format-version": 99, "kind": "envgen-store"}')
    with pytest.raises(EnvgenError, match="format 99"):
        Store(root)
    other = tmp_path / "o"
    other.mkdir()
    (other / "mine.txt").write_text("x")
    with pytest.raises(EnvgenError, match="not an envgen store"):
        Store(other)


def test_verify_catches_flipped_byte(tmp_path, capsys):
    st = Store(tmp_path / "s")
    good = st.add_bytes(b"a" * 100_000)
    bad = st.add_bytes(b"b" * 100_000)
    p = st.path_of(bad)
    os.chmod(p, 0o644)
    data = bytearray(p.read_bytes())
    data[5000] ^= 1
    p.write_bytes(bytes(data))
    rep = st.verify()
    assert rep.corrupt == [bad] and rep.checked == 2 and not rep.ok
    rc = main(["store", "verify", "--store", str(st.root), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["corrupt"] == [bad] and out["ok"] is False
    # one snapshot's objects: corrupt + missing
    root = {"format-version": 1, "kind": "envgen-snapshot", "name": "x", "snapshot-date": "2025-01-01T00:00:00Z",
            "objects": [{"role": "wheel", "name": n, "sha256": s, "size": 1}
                        for n, s in (("g", good), ("b", bad), ("m", "f" * 64))]}
    from envgen.fsutil import canonical_json

    data = canonical_json(root)
    sid = sha(data)
    st.write_root(sid, data)
    rc = main(["store", "verify", sid, "--store", str(st.root), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["corrupt"] == [bad] and out["missing"] == ["f" * 64]
    rc = main(["store", "verify", "--repair", "--store", str(st.root), "--json"])
    capsys.readouterr()
    assert rc == 1 and not st.has(bad) and st.has(good)
    assert main(["store", "verify", "--store", str(st.root), "-q"]) == 0


def test_gc_frees_unreferenced_keeps_referenced(tmp_path, capsys):
    from envgen.fsutil import canonical_json

    st = Store(tmp_path / "s")
    keep = st.add_bytes(b"keep" * 1000)
    drop = st.add_bytes(b"drop" * 1000)
    (st.root / "trees").mkdir()  # a later stage's directory: left alone
    (st.root / "trees" / "t").write_text("x")
    doc = {"format-version": 1, "kind": "envgen-snapshot", "name": "k", "snapshot-date": "2025-01-01T00:00:00Z",
           "objects": [{"role": "wheel", "name": "k", "sha256": keep, "size": 4000}]}
    data = canonical_json(doc)
    sid = sha(data)
    st.write_root(sid, data)
    assert main(["gc", "--dry-run", "--store", str(st.root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["removed"] == 1 and out["freed_bytes"] == 4000 and st.has(drop)
    assert main(["gc", "--store", str(st.root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["removed"] == 1 and out["kept"] == 1
    assert st.has(keep) and not st.has(drop) and (st.root / "trees" / "t").is_file()
    assert main(["store", "forget", sid, "--store", str(st.root), "-q"]) == 0
    capsys.readouterr()
    assert st.gc()["removed"] == 1 and not st.has(keep)


def test_gc_refuses_unreadable_root(tmp_path):
    st = Store(tmp_path / "s")
    st.add_bytes(b"x")
    (st.roots / "broken.json").write_text("{nope")
    with pytest.raises(EnvgenError, match="unreadable gc root"):
        st.gc()
    assert len(list(st.iter_objects())) == 1


def test_stale_tmp_cleaned_only_when_store_idle(tmp_path):
    st = Store(tmp_path / "s")
    (st.tmp / "obj-stale.part").write_bytes(b"partial")
    (st.tmp / "restore-old").mkdir()
    with st.session():  # first user: cleans
        assert not list(st.tmp.iterdir())
        (st.tmp / "obj-live.part").write_bytes(b"in flight")
        other = Store(st.root)
        with other.session():  # a second concurrent session must not touch in-flight files
            assert (st.tmp / "obj-live.part").exists()


# --------------------------------------------------------------------------- source packing


def _tree(root):
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("x = 1\n")
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"c")
    (root / "tool.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "tool.sh", 0o700)
    (root / "data").mkdir()
    (root / "data" / "keep.csv").write_text("a,b\n")
    (root / "data" / "big.tmp").write_text("ignored\n")
    (root / "data" / ".gitignore").write_text("*.tmp\n")
    (root / ".gitignore").write_text("*.log\nout/\n!important.log\n")
    (root / "x.log").write_text("ignored\n")
    (root / "important.log").write_text("kept\n")
    (root / "out").mkdir()
    (root / "out" / "res.txt").write_text("ignored\n")
    (root / "z.pyc").write_bytes(b"c")


EXPECTED = [".gitignore", "data/.gitignore", "data/keep.csv", "important.log", "pkg/__init__.py", "tool.sh"]


def test_srcpack_pathspec_and_git_agree(tmp_path):
    plain = tmp_path / "plain"
    _tree(plain)
    assert srcpack.list_files(plain, use_git=False) == EXPECTED
    repo = tmp_path / "repo"
    _tree(repo)
    env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    assert srcpack.list_files(repo) == EXPECTED  # auto-detects the work tree
    a = srcpack.pack_tree_bytes(plain, 1_700_000_000, use_git=False)
    b = srcpack.pack_tree_bytes(repo, 1_700_000_000)
    assert a == b


def test_srcpack_is_normalised(tmp_path):
    root = tmp_path / "t"
    _tree(root)
    data = srcpack.pack_tree_bytes(root, 1_600_000_000, use_git=False)
    os.utime(root / "pkg" / "__init__.py", (1, 1))
    assert srcpack.pack_tree_bytes(root, 1_600_000_000, use_git=False) == data
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n) and "data" in names and "pkg" in names
    for m in members:
        assert m.mtime == 1_600_000_000 and m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == ""
        assert not m.pax_headers
    modes = {m.name: m.mode for m in members}
    assert modes["tool.sh"] == 0o755 and modes["pkg/__init__.py"] == 0o644 and modes["pkg"] == 0o755
