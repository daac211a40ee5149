"""envgen archive / restore: determinism, offline round trip, hostile bundles."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from envgen.archive import MANIFEST, restore_bundle, write_bundle
from envgen.cli import main
from envgen.errors import BundleRefused, EnvgenError, NewerFormatError, NotABundle
from envgen.lock import pylock
from envgen.snapshot import snapshot
from envgen.snapshot.store import Store


@pytest.fixture
def snapped(synth_project, tmp_path):
    st = Store(tmp_path / "st1")
    res = snapshot(st, pylock.load(synth_project.lock_path))
    synth_project.store = st
    synth_project.id = res.id
    return synth_project


def test_archive_twice_is_byte_identical(snapped, tmp_path, capsys):
    outs = []
    for name in ("a.tar.zst", "b.tar.zst"):
        assert main(["archive", str(snapped.lock_path), "--store", str(snapped.store.root),
                     "-o", str(tmp_path / name), "--json", "--without-envgen"]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0]["sha256"] == outs[1]["sha256"] and outs[0]["id"] == snapped.id
    assert (tmp_path / "a.tar.zst").read_bytes() == (tmp_path / "b.tar.zst").read_bytes()
    for comp in ("gzip", "xz", "none"):
        a = write_bundle(snapped.store, snapped.id, tmp_path / f"c1.{comp}", comp)
        b = write_bundle(snapped.store, snapped.id, tmp_path / f"c2.{comp}", comp)
        assert a["sha256"] == b["sha256"]


def test_bundle_layout(snapped, tmp_path):
    out = tmp_path / "b.tar"
    write_bundle(snapped.store, snapped.id, out, "none")
    with tarfile.open(out) as tf:
        members = tf.getmembers()
        manifest = json.loads(tf.extractfile(members[0]).read())
    names = [m.name for m in members]
    assert names[0] == MANIFEST and names[1:] == sorted(names[1:])
    assert {"README.md", "CITATION.cff", "snapshot.json", "envgen-source.tar"} <= set(names)
    # without envgen's own runtime (envgen archive --without-envgen): no VERIFY.sh, no selfhost/
    assert "VERIFY.sh" not in names and not any(n.startswith("selfhost/") for n in names)
    assert "selfhost-snapshot-id" not in manifest
    assert all(m.isreg() and m.uid == 0 and m.uname == "" and m.mtime == 1746662400 for m in members)
    assert manifest["snapshot-id"] == snapped.id and manifest["kind"] == "envgen-bundle"
    assert len(manifest["members"]) == len(names) - 1
    roles = {m["role"] for m in manifest["members"]}
    assert {"wheel", "deb", "build-deb", "build-wheel", "local-source", "lock", "spec", "envgen-source"} <= roles
    with tarfile.open(out) as tf:
        src = tarfile.open(fileobj=io.BytesIO(tf.extractfile("envgen-source.tar").read()))
        srcnames = src.getnames()
    assert "envgen/snapshot/store.py" in srcnames and "pyproject.toml" in srcnames
    assert not any("__pycache__" in n for n in srcnames)


def test_restore_then_offline_snapshot_gives_same_id(snapped, tmp_path, capsys):
    bundle = tmp_path / "b.tar.zst"
    write_bundle(snapped.store, snapped.id, bundle)
    st2, work = tmp_path / "st2", tmp_path / "work"
    assert main(["restore", str(bundle), "--store", str(st2), "--into", str(work), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["id"] == snapped.id and out["spec"] == str(work / "specs" / "demo.toml")
    assert (work / "specs" / "pylock.demo.toml").read_bytes() == snapped.lock_path.read_bytes()
    assert (work / "app" / "demo_app" / "__init__.py").is_file() and not (work / "app" / "debug.log").exists()
    assert (work / "app" / "run.sh").stat().st_mode & 0o777 == 0o755
    hits = dict(snapped.server.hits)
    snapped.server.close()  # offline from here
    res = snapshot(Store(st2), pylock.load(work / "specs" / "pylock.demo.toml"))
    assert res.id == snapped.id and res.fetched == [] and dict(snapped.server.hits) == hits
    # and the restored store archives to the same bytes
    again = tmp_path / "again.tar.zst"
    write_bundle(Store(st2), snapped.id, again)
    assert again.read_bytes() == bundle.read_bytes()


def test_archive_refuses_to_overwrite_a_non_bundle(snapped, tmp_path, capsys):
    victim = tmp_path / "notes.txt"
    victim.write_text("precious")
    args = ["archive", snapped.id, "--store", str(snapped.store.root), "-o", str(victim), "-q"]
    # refused before any work (with envgen's own runtime, which would need fetching, asked for)
    rc = main(args)
    assert rc == 2 and "not an envgen bundle" in capsys.readouterr().err and victim.read_text() == "precious"
    assert main([*args, "--force", "--without-envgen"]) == 0
    # an existing bundle is replaced without --force
    assert main([*args, "--without-envgen"]) == 0


# --------------------------------------------------------------------------- hostile bundles


def _members(bundle):
    with tarfile.open(bundle) as tf:
        return [(m, tf.extractfile(m).read() if m.isreg() else b"") for m in tf.getmembers()]


def _write(path, members):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            ti = tarfile.TarInfo(ti.name) if not isinstance(ti, tarfile.TarInfo) else ti
            if ti.isreg():
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return path


def _set_manifest(members, fn):
    ti, data = members[0]
    doc = json.loads(data)
    fn(doc)
    members[0] = (ti, json.dumps(doc).encode())
    return members


def _reg(name, data=b"x"):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    return ti, data


def _special(name, kind, linkname=""):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = linkname
    return ti, b""


def _inner_tar(names):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for n in names:
            ti = tarfile.TarInfo(n)
            ti.size = 1
            tf.addfile(ti, io.BytesIO(b"x"))
    return buf.getvalue()


def _evil_local_source(members):
    """Replace the local-source object by a tar holding '../escape', with a consistent manifest."""
    snap_i = next(i for i, (t, _) in enumerate(members) if t.name == "snapshot.json")
    snap = json.loads(members[snap_i][1])
    obj = next(o for o in snap["objects"] if o["role"] == "local-source")
    evil = _inner_tar(["ok.txt", "../escape.txt"])
    old, new = obj["sha256"], hashlib.sha256(evil).hexdigest()
    obj["sha256"], obj["size"] = new, len(evil)
    from envgen.fsutil import canonical_json

    snap_bytes = canonical_json(snap)
    out = []
    for ti, data in members:
        if ti.name == f"objects/sha256/{old}":
            ti, data = tarfile.TarInfo(f"objects/sha256/{new}"), evil
        elif ti.name == "snapshot.json":
            data = snap_bytes
        out.append((ti, data))

    def fix(doc):
        doc["snapshot-id"] = hashlib.sha256(snap_bytes).hexdigest()
        for m in doc["members"]:
            if m["path"] == f"objects/sha256/{old}":
                m.update(path=f"objects/sha256/{new}", sha256=new, size=len(evil))
            if m["path"] == "snapshot.json":
                m.update(sha256=hashlib.sha256(snap_bytes).hexdigest(), size=len(snap_bytes))
        doc["members"].sort(key=lambda m: m["path"])

    return _set_manifest(out, fix)


HOSTILE = {
    "dotdot": (lambda ms: ms + [_reg("../evil")], "'..'"),
    "absolute": (lambda ms: ms + [_reg("/tmp/evil")], "absolute"),
    "symlink": (lambda ms: ms + [_special("objects/link", tarfile.SYMTYPE, "/etc/passwd")], "symlink"),
    "symlink-inside": (lambda ms: ms + [_special("link", tarfile.SYMTYPE, "README.md")], "symlink"),
    "hardlink": (lambda ms: ms + [_special("hl", tarfile.LNKTYPE, "README.md")], "hardlink"),
    "device": (lambda ms: ms + [_special("dev", tarfile.CHRTYPE)], "device"),
    "fifo": (lambda ms: ms + [_special("fifo", tarfile.FIFOTYPE)], "fifo"),
    "duplicate": (lambda ms: ms + [ms[-1]], "duplicate"),
    "tampered-content": (lambda ms: ms[:-1] + [(ms[-1][0], b"Z" + ms[-1][1][1:])], "sha256"),
    "unlisted-member": (lambda ms: ms + [_reg("extra.txt")], "not in the manifest"),
    "missing-member": (lambda ms: [m for m in ms if not m[0].name.startswith("objects/")][:] +
                       [m for m in ms if m[0].name.startswith("objects/")][1:], "absent"),
    "manifest-lies": (lambda ms: _set_manifest(ms, lambda d: d["members"][0].update(sha256="0" * 64)), "sha256"),
    "wrong-id": (lambda ms: _set_manifest(ms, lambda d: d.update({"snapshot-id": "1" * 64})), "snapshot id"),
    "newer-format": (lambda ms: _set_manifest(ms, lambda d: d.update({"format-version": 7})), "format 7"),
    "not-a-bundle": (lambda ms: ms[1:], "not an envgen bundle"),
    "evil-local-source": (_evil_local_source, "'..'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_bundles_are_refused_and_leave_nothing(snapped, tmp_path, case):
    good = tmp_path / "good.tar"
    write_bundle(snapped.store, snapped.id, good, "none")
    mutate, needle = HOSTILE[case]
    bad = _write(tmp_path / "bad.tar", mutate(_members(good)))
    st = Store(tmp_path / "st2")
    into = tmp_path / "work"
    with pytest.raises(EnvgenError) as ei:
        restore_bundle(st, bad, into)
    assert needle in str(ei.value), str(ei.value)
    kind = {"not-a-bundle": NotABundle, "newer-format": NewerFormatError}.get(case, BundleRefused)
    assert isinstance(ei.value, kind), type(ei.value)
    assert list(st.iter_objects()) == [] and st.list_roots() == [] and not list(st.tmp.iterdir())
    assert not into.exists() and not (tmp_path / "escape.txt").exists() and not (tmp_path / "evil").exists()


def test_garbage_file_is_not_a_bundle(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 100)
    with pytest.raises(EnvgenError, match="not an envgen bundle|damaged"):
        restore_bundle(Store(tmp_path / "s"), junk)
    junk.write_bytes(b"hello world")
    with pytest.raises(EnvgenError, match="not an envgen bundle"):
        restore_bundle(Store(tmp_path / "s"), junk)


def test_restore_refuses_non_empty_into(snapped, tmp_path):
    bundle = tmp_path / "b.tar.gz"
    write_bundle(snapped.store, snapped.id, bundle, "gzip")
    into = tmp_path / "busy"
    into.mkdir()
    (into / "x").write_text("mine")
    st = Store(tmp_path / "st2")
    with pytest.raises(EnvgenError, match="not an empty directory"):
        restore_bundle(st, bundle, into)
    assert list(st.iter_objects()) == []
    res = restore_bundle(st, bundle)  # without --into: store only
    assert res["id"] == snapped.id and st.list_roots() == [snapped.id] and st.verify().ok
