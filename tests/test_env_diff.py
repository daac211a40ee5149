"""envgen diff, closure-wide (issue 17): two bundles, two OCI layouts, two SIF files, and mixed kinds."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

import pytest

from envgen.archive import write_bundle
from envgen.cli import main
from envgen.export import ImageMeta
from envgen.export.oci import write_oci
from envgen.lock import pylock
from envgen.snapshot import snapshot
from envgen.snapshot.store import Store
from helpers import make_lock, require_tool


def _diff(capsys, a, b, *extra) -> tuple[int, dict]:
    rc = main(["diff", str(a), str(b), "--json", *extra])
    return rc, json.loads(capsys.readouterr().out)


def test_two_bundles_differing_by_a_version_a_rebuilt_wheel_and_a_local_project(synth_project, tmp_path, capsys):
    """Bundle B: beta 2.0 -> 2.1, alpha's wheel rebuilt (same version, other bytes), the local project edited."""
    p = synth_project
    st = Store(tmp_path / "st")
    sid_a = snapshot(st, pylock.load(p.lock_path)).id
    lock_a = tmp_path / "pylock.a.toml"
    lock_a.write_bytes(p.lock_path.read_bytes())
    write_bundle(st, sid_a, tmp_path / "a.tar", "none")

    lock = pylock.load(p.lock_path)

    def served(fn: str, data: bytes) -> pylock.Artifact:
        url = p.server.add(f"/files/{fn}", data)
        return pylock.Artifact("wheel", fn, url, hashlib.sha256(data).hexdigest(), len(data), lock.snapshot_date)

    lock.package("alpha").wheels = [served("alpha-1.0-py3-none-any.whl", b"alpha rebuilt" * 100)]
    beta = lock.package("beta")
    beta.version, beta.wheels = "2.1", [served("beta-2.1-py3-none-any.whl", b"beta 2.1" * 100)]
    p.lock_path.write_text(pylock.dumps(lock))
    (p.app / "demo_app" / "__init__.py").write_text("VALUE = 2\n")
    sid_b = snapshot(st, pylock.load(p.lock_path)).id
    write_bundle(st, sid_b, tmp_path / "b.tar.zst")

    rc, data = _diff(capsys, tmp_path / "a.tar", tmp_path / "b.tar.zst")
    assert rc == 1 and data["kinds"] == {"a": "bundle", "b": "bundle"}
    assert data["digests"] == {"a": sid_a, "b": sid_b}
    got = {(c["source"], c["name"]): (c["change"], c["old"], c["new"]) for c in data["changes"]}
    assert got.pop(("pypi", "beta")) == ("upgraded", "2.0", "2.1")
    assert got.pop(("pypi", "alpha")) == ("rebuilt", "1.0", "1.0")
    change, old, new = got.pop(("local-source", "demo-app"))
    assert change == "rebuilt" and old != new and old.startswith("sha256:")
    assert got == {} and data["build_changes"] == [] and data["layer_changes"] == []

    # the other way round: a downgrade; human output grouped by kind
    assert main(["diff", str(tmp_path / "b.tar.zst"), str(tmp_path / "a.tar")]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "runtime (PyPI, Debian, local projects):"
    assert "  ~ pypi   beta 2.1 -> 2.0 (downgraded)" in out and "(rebuilt)" in out

    # a lock against the bundle made from it: one closure, no differences
    assert _diff(capsys, lock_a, tmp_path / "a.tar")[0] == 0
    assert main(["diff", str(tmp_path / "a.tar"), str(tmp_path / "a.tar")]) == 0
    assert capsys.readouterr().out.strip() == "no differences"


def _tree(root, lock: pylock.Lock, tool: bytes):
    """A small env tree: a Debian file, one distribution in /opt/env, and /.envgen (lock and snapshot)."""
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_bytes(tool)
    site = root / "opt/env/lib/python3.11/site-packages"
    info = site / "x-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "x.py").write_text("X = 1\n")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: x\nVersion: 1.0\n")
    (info / "RECORD").write_text("x.py,,\nx-1.0.dist-info/METADATA,,\nx-1.0.dist-info/RECORD,,\n")
    (root / ".envgen").mkdir()
    (root / ".envgen" / "pylock.toml").write_text(pylock.dumps(lock))
    (root / ".envgen" / "snapshot.json").write_text(json.dumps(
        {"format-version": 1, "kind": "envgen-snapshot", "name": "demo", "snapshot-date": "2025-05-08T00:00:00Z",
         "objects": [{"name": "mine", "path": "mine", "role": "local-source", "sha256": "ab" * 32, "size": 1}]}))
    epoch = int(dt.datetime(2025, 5, 8, tzinfo=dt.UTC).timestamp())
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (epoch, epoch))
    return ImageMeta(root=root, name="demo", snapshot_date=dt.datetime(2025, 5, 8, tzinfo=dt.UTC),
                     snapshot_id="ab" * 32, tree_digest="cd" * 32)


@pytest.fixture
def two_trees(tmp_path):
    """Trees A and B: the same lock (x 1.0, libc6), B with other bytes in one Debian file."""
    lock = make_lock({"x": ("1.0", [])}, {"libc6": "2.36-9"})
    lock_path = tmp_path / "pylock.demo.toml"
    lock_path.write_text(pylock.dumps(lock))
    return lock_path, _tree(tmp_path / "a", lock, b"tool v1\n"), _tree(tmp_path / "b", lock, b"tool v1, patched\n")


def test_two_oci_layouts_differing_in_one_layer(two_trees, tmp_path, capsys):
    lock_path, meta_a, meta_b = two_trees
    res_a = write_oci(meta_a, tmp_path / "oci-a")
    write_oci(meta_b, tmp_path / "oci-b")
    rc, data = _diff(capsys, tmp_path / "oci-a", tmp_path / "oci-b")
    assert rc == 1 and data["kinds"] == {"a": "oci", "b": "oci"}
    assert data["digests"]["a"] == res_a["manifest_digest"]
    assert data["changes"] == [] and data["build_changes"] == []
    digests = {layer["name"]: layer["digest"] for layer in res_a["layers"]}
    assert [(c["name"], c["change"]) for c in data["layer_changes"]] == [("debian", "rebuilt")]
    assert data["layer_changes"][0]["old"] == digests["debian"][:len("sha256:") + 12]
    assert main(["diff", str(tmp_path / "oci-a"), str(tmp_path / "oci-b")]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "image layers:" and "  ~ layer  debian sha256:" in out

    # the lock the image was made from, against the image: nothing differs
    rc, data = _diff(capsys, lock_path, tmp_path / "oci-a")
    assert rc == 0 and data["kinds"] == {"a": "lock", "b": "oci"} and data["layer_changes"] == []


def test_two_sif_files_and_a_sif_against_an_oci_layout(two_trees, tmp_path, capsys):
    require_tool("mksquashfs", "unsquashfs")
    from envgen.export.sif import write_env_sif

    _, meta_a, meta_b = two_trees
    write_env_sif(meta_a, tmp_path / "a.sif")
    write_env_sif(meta_b, tmp_path / "b.sif")
    rc, data = _diff(capsys, tmp_path / "a.sif", tmp_path / "b.sif")
    assert rc == 1 and data["kinds"] == {"a": "sif", "b": "sif"}
    assert [(c["name"], c["change"]) for c in data["layer_changes"]] == [("partition", "rebuilt")]
    assert data["changes"] == [] and data["build_changes"] == []
    write_oci(meta_a, tmp_path / "oci-a")
    rc, data = _diff(capsys, tmp_path / "a.sif", tmp_path / "oci-a")
    # same packages; layers are compared by name, and a SIF's partition is no OCI layer
    assert data["changes"] == [] and {c["change"] for c in data["layer_changes"]} == {"added", "removed"}


def test_diff_refuses_what_it_cannot_read(tmp_path, capsys):
    (tmp_path / "junk.bin").write_bytes(b"\0" * 100)
    (tmp_path / "dir").mkdir()
    for bad in ("junk.bin", "dir", "missing.toml"):
        assert main(["diff", str(tmp_path / bad), str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) <= 2 and "Traceback" not in err, err
