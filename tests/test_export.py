"""envgen export: reproducible layers, OCI layout, docker-archive, SIF/squashfs, container runtimes.

The default tests use small synthetic trees (fast).  The end-to-end ones
(the tiny spec from tests/fixtures and the full ABIDE env, podman) are marked
slow + network: they lock and snapshot from the real indices.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from envgen.errors import EnvgenError
from envgen.export import EXPORTERS, FORMATS, ExportOptions, ImageMeta, check_output_path
from envgen.export import layers as L
from envgen.export import sif as S
from envgen.export.dockerarchive import write_docker_archive
from envgen.export.oci import write_oci
from helpers import REPO, require_tool, run_envgen

EPOCH = int(dt.datetime(2025, 5, 8, tzinfo=dt.UTC).timestamp())
SITE = "opt/env/lib/python3.11/site-packages"


# --------------------------------------------------------------------------- a synthetic env tree


def _dist(root: Path, name: str, version: str, files: dict[str, bytes], scripts: dict[str, bytes] | None = None):
    site = root / SITE
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    rec = [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    for rel, data in files.items():
        p = site / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        rec.append(f"{rel},sha256=x,{len(data)}")
        if rel.endswith(".py"):  # bytecode compiled after install: not in RECORD
            pyc = p.parent / "__pycache__" / (p.stem + ".cpython-311.pyc")
            pyc.parent.mkdir(exist_ok=True)
            pyc.write_bytes(b"pyc:" + data)
    for sname, data in (scripts or {}).items():
        p = root / "opt/env/bin" / sname
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(0o755)
        rec.append(f"../../../bin/{sname},sha256=x,{len(data)}")
    (info / "RECORD").write_text("\n".join(rec) + "\n")


def make_tree(root: Path, small_version: str = "1.0", local_code: bytes = b"print('hi')\n") -> Path:
    for d in ("proc", "dev", "tmp", "sys", "run", "home", "etc", "usr/bin", "usr/lib/empty", ".envgen"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/nonexistent\nenvgen:x:1000:1000::/home:/nonexistent\n")
    (root / "usr/bin/python3.11").write_bytes(b"\x7fELF" + os.urandom(0) + b"python" * 1000)
    os.link(root / "usr/bin/python3.11", root / "usr/bin/python3")  # a hardlink pair
    (root / "opt/env/bin").mkdir(parents=True, exist_ok=True)
    os.symlink("/usr/bin/python3.11", root / "opt/env/bin/python")
    (root / "opt/env/pyvenv.cfg").write_text("home = /usr/bin\n")
    _dist(root, "numpy", "1.26.4", {"numpy/__init__.py": b"# numpy\n", "numpy/core.so": b"N" * 50000},
          {"f2py": b"#!/opt/env/bin/python\n"})
    _dist(root, "scipy", "1.15.2", {"scipy/__init__.py": b"# scipy\n", "scipy/linalg.so": b"S" * 40000})
    _dist(root, "bigpkg", "2.0", {"bigpkg/__init__.py": b"# big\n", "bigpkg/data.bin": b"B" * 70000})
    _dist(root, "small", small_version, {"small.py": f"VERSION = {small_version!r}\n".encode()})
    _dist(root, "six", "1.17.0", {"six.py": b"# six\n"})
    _dist(root, "mylocal", "0.1.0", {"mylocal/__init__.py": local_code}, {"mylocal": b"#!/opt/env/bin/python\n"})
    (root / ".envgen/pylock.toml").write_text(f"# lock small=={small_version}\n")
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (EPOCH + 999, EPOCH + 999), follow_symlinks=False)
    return root


def plan(root: Path):
    return L.plan_layers(root, local={"mylocal"}, big=60000)


def meta_of(root: Path, **kw) -> ImageMeta:
    base = dict(root=root, name="synth", snapshot_date=dt.datetime(2025, 5, 8, tzinfo=dt.UTC),
                snapshot_id="ab" * 32, tree_digest="cd" * 32, command=["mylocal"], run_env={"OMP_NUM_THREADS": "1"},
                version="0.1.0", local=frozenset({"mylocal"}), sbom=b'{"bomFormat":"CycloneDX"}')
    base.update(kw)
    return ImageMeta(**base)


def layer_digests(root: Path, tmp: Path) -> dict[str, str]:
    out = {}
    tmp.mkdir(parents=True, exist_ok=True)
    for layer in plan(root):
        blob = L.write_layer_blob(root, layer, tmp / layer.name, EPOCH)
        out[layer.name] = blob.digest
    return out


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "tree")


def need(*tools):
    require_tool(*tools, why="apt-get install podman runc umoci skopeo squashfs-tools siftool")


# --------------------------------------------------------------------------- layering


def test_layering_rule(tree):
    layers = {la.name: la for la in plan(tree)}
    assert list(layers) == ["debian", "numpy-scipy", "dist-bigpkg", "python", "project"]
    assert "usr/bin/python3.11" in layers["debian"].paths and "etc/passwd" in layers["debian"].paths
    np = layers["numpy-scipy"].paths
    assert f"{SITE}/numpy/core.so" in np and f"{SITE}/scipy/linalg.so" in np
    assert f"{SITE}/numpy/__pycache__/__init__.cpython-311.pyc" in np  # bytecode follows its source
    assert "opt/env/bin/f2py" in np  # console scripts follow their RECORD
    assert f"{SITE}/numpy-1.26.4.dist-info/RECORD" in np
    assert f"{SITE}/small.py" in layers["python"].paths and "opt/env/bin/python" in layers["python"].paths
    proj = layers["project"].paths
    assert f"{SITE}/mylocal/__init__.py" in proj and ".envgen/pylock.toml" in proj and "opt/env/bin/mylocal" in proj
    # every tree entry is in some layer; parents come with their children
    from envgen.builders.tree import walk

    union = set().union(*(set(la.paths) for la in layers.values()))
    assert {rel for rel, _ in walk(tree)} <= union
    for la in layers.values():
        for p in la.paths:
            parent = os.path.dirname(p)
            assert not parent or parent in la.paths


def test_layers_are_deterministic_and_clamped(tree, tmp_path):
    first = layer_digests(tree, tmp_path / "a")
    # a copy of the tree with other mtimes and modes on the directories gives the same bytes
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy, symlinks=True)
    os.unlink(copy / "usr/bin/python3")
    os.link(copy / "usr/bin/python3.11", copy / "usr/bin/python3")
    for dirpath, dirnames, filenames in os.walk(copy):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (EPOCH + 5000, EPOCH + 5000), follow_symlinks=False)
    assert layer_digests(copy, tmp_path / "b") == first
    assert layer_digests(tree, tmp_path / "c") == first


def test_tar_entries_are_normalised(tree):
    debian = plan(tree)[0]
    buf = io.BytesIO()
    L.write_tar(tree, debian, buf, EPOCH)
    names = []
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        for m in tar.getmembers():
            names.append(m.name)
            assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
            assert m.mtime == EPOCH and isinstance(m.mtime, int)
            assert not set(m.pax_headers) & {"mtime", "atime", "ctime", "uname", "gname"}
        links = {m.name: m for m in tar.getmembers() if m.islnk()}
    assert names == sorted(names, key=lambda n: n.rstrip("/").encode())
    assert links["usr/bin/python3.11"].linkname == "usr/bin/python3"  # hardlink: second one links the first
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        assert tar.getmember("tmp").mode == 0o1777
        assert tar.getmember("etc/passwd").mode & 0o200  # owner-write restored in images


def test_gzip_stream_has_a_fixed_header_and_is_valid():
    out = io.BytesIO()
    g = L.GzipStream(out, 6)
    data = b"envgen " * 10000
    g.write(data[:100])
    g.write(data[100:])
    g.close()
    raw = out.getvalue()
    assert raw[:10] == bytes.fromhex("1f8b0800000000000" "0ff")
    assert gzip.decompress(raw) == data
    assert struct.unpack("<II", raw[-8:]) == (zlib.crc32(data), len(data))


def test_zstd_layers(tree, tmp_path):
    import zstandard

    layer = plan(tree)[-1]
    a = L.write_layer_blob(tree, layer, tmp_path / "a", EPOCH, L.ZSTD)
    b = L.write_layer_blob(tree, layer, tmp_path / "b", EPOCH, L.ZSTD)
    g = L.write_layer_blob(tree, layer, tmp_path / "g", EPOCH, L.GZIP)
    assert a.digest == b.digest and a.media_type.endswith("tar+zstd")
    assert a.diff_id == g.diff_id  # same tar, other compression
    tar = zstandard.ZstdDecompressor().stream_reader(open(tmp_path / "a", "rb")).read()
    assert hashlib.sha256(tar).hexdigest() == a.diff_id


def test_changing_one_small_package_changes_only_the_expected_layers(tmp_path):
    base = layer_digests(make_tree(tmp_path / "t1"), tmp_path / "b1")
    bumped = layer_digests(make_tree(tmp_path / "t2", small_version="1.1"), tmp_path / "b2")
    changed = {k for k in base if base[k] != bumped.get(k)}
    assert changed == {"python", "project"}  # project: /.envgen/pylock.toml names the new version
    # the local project's code changes only the last layer
    code = layer_digests(make_tree(tmp_path / "t3", local_code=b"print('bye')\n"), tmp_path / "b3")
    assert {k for k in base if base[k] != code[k]} == {"project"}


# --------------------------------------------------------------------------- OCI and docker-archive


def test_oci_layout_is_reproducible_and_valid(tree, tmp_path):
    m = meta_of(tree)
    a = write_oci(m, tmp_path / "a.oci")
    b = write_oci(m, tmp_path / "b.oci")
    assert a["manifest_digest"] == b["manifest_digest"]
    out = tmp_path / "a.oci"
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((out / "index.json").read_text())
    desc = index["manifests"][0]
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == m.ref == f"envgen/synth:{'ab' * 6}"
    for blob in (out / "blobs/sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    manifest = json.loads((out / "blobs/sha256" / desc["digest"].split(":")[1]).read_bytes())
    config = json.loads((out / "blobs/sha256" / manifest["config"]["digest"].split(":")[1]).read_bytes())
    assert (out / "blobs/sha256" / desc["digest"].split(":")[1]).read_bytes() == json.dumps(
        manifest, sort_keys=True, separators=(",", ":")).encode()
    assert config["created"] == "2025-05-08T00:00:00Z" and config["config"]["User"] == "1000:1000"
    assert "PATH=/opt/env/bin:/usr/local/bin:/usr/bin:/bin" in config["config"]["Env"]
    assert f"SOURCE_DATE_EPOCH={EPOCH}" in config["config"]["Env"] and "OMP_NUM_THREADS=1" in config["config"]["Env"]
    assert config["config"]["Cmd"] == ["mylocal"]
    assert config["config"]["Labels"]["dev.envgen.tree-digest"] == "cd" * 32
    assert manifest["annotations"]["org.opencontainers.image.created"] == "2025-05-08T00:00:00Z"
    # default threshold (4 MiB): bigpkg stays in "python"
    assert [la["annotations"]["dev.envgen.layer"] for la in manifest["layers"]] == [
        "debian", "numpy-scipy", "python", "project"]
    assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"])
    # the SBOM is a file in the last layer
    last = out / "blobs/sha256" / manifest["layers"][-1]["digest"].split(":")[1]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(last.read_bytes()))) as tar:
        assert tar.extractfile(".envgen/sbom.cdx.json").read() == m.sbom


def test_oci_layout_passes_umoci_and_skopeo(tree, tmp_path):
    need("umoci", "skopeo")
    m = meta_of(tree)
    out = tmp_path / "img.oci"
    write_oci(m, out)
    p = subprocess.run(["skopeo", "inspect", f"oci:{out}:{m.ref}"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["Labels"]["dev.envgen.snapshot-id"] == "ab" * 32
    p = subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{out}:{m.ref}", str(tmp_path / "bundle")],
                       capture_output=True, text=True)  # umoci checks every diff_id
    assert p.returncode == 0, p.stderr
    rootfs = tmp_path / "bundle/rootfs"
    assert (rootfs / SITE / "small.py").read_text() == "VERSION = '1.0'\n"
    assert os.readlink(rootfs / "opt/env/bin/python") == "/usr/bin/python3.11"
    p = subprocess.run(["skopeo", "copy", f"oci:{out}:{m.ref}", f"dir:{tmp_path / 'copy'}"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_docker_archive(tree, tmp_path):
    m = meta_of(tree)
    a = write_docker_archive(m, tmp_path / "a.tar")
    b = write_docker_archive(m, tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        names = tar.getnames()
        assert names[0] == "manifest.json"
        man = json.loads(tar.extractfile("manifest.json").read())
        assert man[0]["RepoTags"] == [m.ref]
        for layer in man[0]["Layers"]:
            data = tar.extractfile(layer).read()
            assert "sha256:" + hashlib.sha256(data).hexdigest() in [x["diff_id"] for x in a["layers"]]
    assert a["image_id"] == b["image_id"]


def test_output_path_is_refused_unless_ours_or_forced(tmp_path):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "x.txt").write_text("keep me")
    with pytest.raises(EnvgenError, match="not an envgen export"):
        check_output_path(mine, False, "dir")
    check_output_path(mine, True, "dir")
    f = tmp_path / "f.tar"
    f.write_text("hello")
    with pytest.raises(EnvgenError):
        check_output_path(f, False, "file")
    proc = run_envgen("export", str(REPO / "specs/abide.toml"), "-o", str(mine), "--store", str(tmp_path / "st"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not an envgen export" in proc.stderr
    proc = run_envgen("export", str(REPO / "specs/abide.toml"), "--format", "tgz", "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and "oci" in proc.stderr and "sif" in proc.stderr


def test_sbom_lists_every_package_and_deb():
    from envgen.export.sbom import make_sbom
    from envgen.lock import pylock

    lock = pylock.load(REPO / "specs/pylock.abide.toml")
    a = make_sbom(lock, "cd" * 32, "ab" * 32, "abide")
    assert a == make_sbom(lock, "cd" * 32, "ab" * 32, "abide")
    bom = json.loads(a)
    purls = {c["purl"] for c in bom["components"]}
    assert len(bom["components"]) == len(lock.packages) + len(lock.debian.packages)
    assert "pkg:pypi/scikit-learn@1.6.1" in purls
    assert any(p.startswith("pkg:deb/debian/python3.11-minimal@") for p in purls)
    sk = next(c for c in bom["components"] if c["name"] == "scikit-learn")
    assert sk["hashes"][0]["content"] == lock.package("scikit-learn").wheels[0].sha256
    assert bom["metadata"]["timestamp"].startswith("2025-05-08T00:00:00")


# --------------------------------------------------------------------------- SIF and squashfs


@pytest.fixture
def sif_file(tree, tmp_path):
    need("mksquashfs")
    out = tmp_path / "synth.sif"
    info = S.write_env_sif(meta_of(tree), out)
    return SimpleNamespace(path=out, info=info, tree=tree)


def test_sif_is_reproducible_and_round_trips(sif_file, tmp_path):
    again = S.write_env_sif(meta_of(sif_file.tree), tmp_path / "again.sif")
    assert again["sha256"] == sif_file.info["sha256"]
    raw = sif_file.path.read_bytes()
    assert raw[:32].rstrip(b"\0") == b"#!/usr/bin/env run-singularity\n"
    assert raw[0x20:0x2A] == b"SIF_MAGIC\0" and raw[0x30:0x40] == b"\0" * 16
    assert struct.unpack_from("<qq", raw, 0x40) == (EPOCH, EPOCH)  # created, modified: the snapshot date
    info = S.read_sif(sif_file.path)
    kinds = [d.datatype for d in info.descriptors]
    assert kinds == [S.DT_DEFFILE, S.DT_LABELS, S.DT_SBOM, S.DT_PARTITION]
    part = info.primary()
    assert part.offset % 4096 == 0 and part.fstype == S.FS_SQUASH and info.arch == b"02\0"
    assert S.partition_sha256(info, part) == info.labels()["dev.envgen.partition-sha256"]
    assert b"Bootstrap: envgen" in info.read(info.descriptors[0])


def test_siftool_and_unsquashfs_accept_the_sif(sif_file):
    need("siftool", "unsquashfs")
    p = subprocess.run(["siftool", "list", str(sif_file.path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "Squashfs" in p.stdout and "Def.FILE" in p.stdout and "Labels" in p.stdout
    part = S.read_sif(sif_file.path).primary()
    p = subprocess.run(["unsquashfs", "-o", str(part.offset), "-l", str(sif_file.path)], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    listed = p.stdout.split()
    assert "squashfs-root/usr/bin/python3.11" in listed and "squashfs-root/.singularity.d/runscript" in listed


def test_sqsh_is_reproducible(tree, tmp_path):
    need("mksquashfs")
    a = S.write_env_sqsh(meta_of(tree), tmp_path / "a.sqsh")
    b = S.write_env_sqsh(meta_of(tree), tmp_path / "b.sqsh")
    assert a["sha256"] == b["sha256"] and (tmp_path / "a.sqsh").read_bytes()[:4] == b"hsqs"


def _mkfs_time(raw: bytes, offset: int = 0) -> int:
    """The squashfs superblock's mkfs_time (little-endian u32 at byte 8) of the image at *offset*."""
    assert raw[offset:offset + 4] == b"hsqs"
    return struct.unpack_from("<I", raw, offset + 8)[0]


def test_sif_and_sqsh_are_dated_at_the_snapshot_date(tree, tmp_path):
    """One clock: squashfs and SIF times are the snapshot date, as the OCI config's "created" is, not 1970."""
    need("mksquashfs")
    m = meta_of(tree)
    assert m.epoch == EPOCH
    S.write_env_sqsh(m, tmp_path / "a.sqsh")
    S.write_env_sqsh(meta_of(tree), tmp_path / "b.sqsh")
    raw = (tmp_path / "a.sqsh").read_bytes()
    assert _mkfs_time(raw) == EPOCH and raw == (tmp_path / "b.sqsh").read_bytes()
    S.write_env_sif(m, tmp_path / "a.sif")
    S.write_env_sif(meta_of(tree), tmp_path / "b.sif")
    raw = (tmp_path / "a.sif").read_bytes()
    assert raw == (tmp_path / "b.sif").read_bytes()
    info = S.read_sif(tmp_path / "a.sif")
    assert _mkfs_time(raw, info.primary().offset) == EPOCH
    assert (info.created, info.modified) == (EPOCH, EPOCH)
    for d in info.descriptors:  # each descriptor's ctime and mtime (int64s at byte 41 of the 585-byte record)
        i = d.id - 1
        assert struct.unpack_from("<qq", raw, S.DESCR_OFFSET + i * S.DESCR_SIZE + 41) == (EPOCH, EPOCH)
    if shutil.which("unsquashfs"):
        p = subprocess.run(["unsquashfs", "-o", str(info.primary().offset), "-lls", str(tmp_path / "a.sif")],
                           capture_output=True, text=True, env={**os.environ, "TZ": "UTC"})
        assert p.returncode == 0 and "2025-05-08 00:00" in p.stdout, p.stdout[-500:]


def test_failed_exports_leave_nothing_behind(tree, tmp_path, monkeypatch):
    need("mksquashfs")
    out = tmp_path / "out"
    out.mkdir()
    gone = meta_of(tmp_path / "no-such-tree")
    for fmt in ("sqsh", "sif"):
        with pytest.raises(EnvgenError):
            EXPORTERS[fmt](gone, out / f"x.{fmt}")
    (out / "keep.oci").mkdir()
    (out / "keep.oci" / "old").write_text("old")
    import envgen.export.oci as O

    def boom(*a, **kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(O, "make_manifest", boom)  # after the layers are written
    for fmt in ("oci", "docker-archive"):
        with pytest.raises(RuntimeError):
            EXPORTERS[fmt](meta_of(tree), out / ("keep.oci" if fmt == "oci" else "x.tar"))
    assert sorted(p.name for p in out.iterdir()) == ["keep.oci"] and (out / "keep.oci" / "old").read_text() == "old"


def test_exporters_registry_has_one_signature(tree, tmp_path):
    need("mksquashfs")
    assert FORMATS == tuple(EXPORTERS) == ("oci", "docker-archive", "sif", "sqsh")
    assert EXPORTERS["oci"].output == "dir" and {EXPORTERS[f].output for f in FORMATS[1:]} == {"file"}
    opts = ExportOptions(compression="zstd", jobs=1)
    for fmt in FORMATS:
        summary = EXPORTERS[fmt](meta_of(tree), tmp_path / f"x.{fmt}", opts)
        assert summary["format"] == fmt and summary["path"] == str(tmp_path / f"x.{fmt}")
    assert json.loads((tmp_path / "x.oci" / "index.json").read_bytes())["manifests"][0]["size"] > 0


def _corrupt(src: Path, dst: Path, offset: int, data: bytes) -> Path:
    raw = bytearray(src.read_bytes())
    raw[offset:offset + len(data)] = data
    dst.write_bytes(bytes(raw))
    return dst


def test_corrupt_sifs_are_refused_with_one_line(sif_file, tmp_path):
    part = S.read_sif(sif_file.path).primary()
    d0 = S.DESCR_OFFSET
    cases = {
        "magic": _corrupt(sif_file.path, tmp_path / "m.sif", 0x20, b"NOT_MAGIC\0"),
        "descriptors": _corrupt(sif_file.path, tmp_path / "d.sif", 0x58, struct.pack("<q", 10**9)),
        "offset": _corrupt(sif_file.path, tmp_path / "o.sif", d0 + 3 * S.DESCR_SIZE + 17, struct.pack("<q", 1 << 40)),
        "datatype": _corrupt(sif_file.path, tmp_path / "t.sif", d0, struct.pack("<i", 0x1234)),
        "squashfs": _corrupt(sif_file.path, tmp_path / "s.sif", part.offset, b"XXXX"),
        "payload": _corrupt(sif_file.path, tmp_path / "p.sif", part.offset + 200, b"\xff" * 64),
    }
    trunc = tmp_path / "short.sif"
    trunc.write_bytes(sif_file.path.read_bytes()[: part.offset + 100])
    cases["truncated"] = trunc
    store = tmp_path / "store"
    for what, bad in cases.items():
        proc = run_envgen("run", str(bad), "--runtime", "sif", "--store", str(store), "--", "python", "-c", "1")
        assert proc.returncode == 2, (what, proc.stderr)
        assert proc.stderr.startswith("envgen: error: ") and proc.stderr.count("\n") == 1, (what, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not (store / "records.sqlite").exists() or "python" not in (store / "records.sqlite").read_bytes().decode(
        "latin-1")  # nothing ran, nothing recorded


def test_apptainer_runtime_says_what_to_do_when_missing(tmp_path):
    if shutil.which("apptainer") or shutil.which("singularity"):
        pytest.skip("apptainer is installed here")
    proc = run_envgen("run", str(REPO / "specs/abide.toml"), "--runtime", "apptainer", "--store", str(tmp_path),
                      "--", "python", "-V")
    assert proc.returncode == 2 and "apptainer is not installed" in proc.stderr and "--runtime sif" in proc.stderr


# --------------------------------------------------------------------------- end to end (slow, network)


def _podman_ok() -> str | None:
    if shutil.which("podman") is None or not os.path.exists("/usr/sbin/runc"):
        return "podman/runc not installed"
    return None


@pytest.fixture(scope="module")
def tiny_env(tiny):
    """The session's tiny env (tests/conftest.py): locked, snapshotted and built once."""
    return tiny


def _export(t, fmt, out, *extra):
    proc = run_envgen("export", str(t.spec), "--store", str(t.store), "--format", fmt, "-o", str(out), "--json",
                      *extra, check=True)
    return json.loads(proc.stdout)


@pytest.mark.slow
@pytest.mark.network
def test_tiny_exports_are_identical_after_a_rebuild(tiny_env):
    t = tiny_env
    a = _export(t, "oci", t.root / "a.oci")
    s1 = _export(t, "sif", t.root / "a.sif")
    run_envgen("build", str(t.spec), "--store", str(t.store), "--force", check=True)  # cleared cache
    b = _export(t, "oci", t.root / "a.oci")  # over our own earlier export: allowed
    s2 = _export(t, "sif", t.root / "b.sif")
    assert a["manifest_digest"] == b["manifest_digest"] and s1["sha256"] == s2["sha256"]
    assert [x["name"] for x in a["layers"]] == ["debian", "python", "project"]


@pytest.mark.slow
@pytest.mark.network
def test_tiny_runs_under_the_sif_runtime_and_is_recorded(tiny_env, tmp_path):
    t = tiny_env
    proc = run_envgen("run", str(t.spec), "--store", str(t.store), "--runtime", "sif", "--json", "--",
                      "python", "-c", "import six; print(six.__version__)", check=True)
    assert "1.17.0" in proc.stderr  # with --json, the command's stdout goes to stderr
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rec["exit_status"] == 0 and rec["snapshot_id"]
    runs = run_envgen("runs", "--store", str(t.store), "--json", check=True).stdout
    assert '"sif"' in runs


@pytest.mark.slow
@pytest.mark.network
def test_tiny_runs_under_podman_as_non_root(tiny_env, tmp_path):
    require_tool("podman", "runc")
    t = tiny_env
    out = tmp_path / "out"
    out.mkdir()
    proc = run_envgen("run", str(t.spec), "--store", str(t.store), "--runtime", "podman", "--bind",
                      f"{out}:/out", "--", "python", "-c",
                      "import os, six; print(six.__version__, os.getuid()); open('/out/w', 'w').write('ok')")
    assert proc.returncode == 0, proc.stderr
    assert "1.17.0 1000" in proc.stdout
    assert (out / "w").read_text() == "ok"


@pytest.mark.slow
@pytest.mark.network
def test_abide_image_runs_the_locked_scikit_learn(abide):
    """The full ABIDE env: OCI export reproducible across a rebuild; podman prints sklearn 1.6.1 as uid 1000."""
    t = SimpleNamespace(spec=abide.spec, store=abide.store, root=abide.root)
    a = _export(t, "oci", abide.root / "abide.oci")
    run_envgen("build", str(abide.spec), "--store", str(abide.store), "--force", check=True)
    b = _export(t, "oci", abide.root / "abide.oci")
    assert a["manifest_digest"] == b["manifest_digest"]
    assert {"debian", "numpy-scipy", "scikit-learn", "project"} <= {x["name"] for x in a["layers"]}
    require_tool("podman", "runc")
    proc = run_envgen("run", str(abide.spec), "--store", str(abide.store), "--runtime", "podman", "--", "python", "-c",
                      "import os, sklearn; print(sklearn.__version__, os.getuid())", check=True)
    assert "1.6.1 1000" in proc.stdout


@pytest.mark.slow
@pytest.mark.network
def test_abide_pipeline_outputs_are_identical_across_runtimes(abide, tmp_path):
    """bwrap (embedded), podman (OCI image) and sif (SIF partition): same deterministic outputs, byte for byte."""
    data = tmp_path / "data"
    data.mkdir()
    run_envgen("run", str(abide.spec), "--store", str(abide.store), "--bind", f"{data}:/data", "--",
               "abide-pipeline", "synth", "--out", "/data", "--seed", "2", "--n-subjects", "60",
               "--sites", "NYU,UM_1,USM,UCLA_1", check=True)
    runtimes = ["bwrap", "sif"] + ([] if _podman_ok() else ["podman"])
    outs = {}
    for rt in runtimes:
        out = tmp_path / f"out-{rt}"
        out.mkdir()
        os.chmod(out, 0o777)  # the image's user (uid 1000) writes here under podman
        run_envgen("run", str(abide.spec), "--store", str(abide.store), "--runtime", rt, "--bind", f"{data}:/data:ro",
                   "--bind", f"{out}:/out", "--", "abide-pipeline", "--input-dir", "/data", "--output-dir", "/out",
                   "--random-state", "0", "--num-folds", "3", check=True)
        outs[rt] = out
    for name in ("inputs.npz", "phenotypes.csv", "args.yaml"):
        assert len({(outs[rt] / name).read_bytes() for rt in runtimes}) == 1, name

    def score_columns(path):
        import csv

        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        keep = [i for i, c in enumerate(rows[0]) if not c.endswith("_time")]
        return [[r[i] for i in keep] for r in rows]

    assert len({json.dumps(score_columns(outs[rt] / "cv_results.csv")) for rt in runtimes}) == 1
    require_tool("podman", "runc", why=f"compared {runtimes} only")


@pytest.mark.slow
@pytest.mark.network
def test_an_image_built_under_umask_077_runs_abide_as_non_root(abide, tmp_path):
    """HPC accounts run with umask 077: the tree, the image and the pipeline's outputs must not notice."""
    require_tool("podman", "runc")
    from envgen.runtimes.podman import podman

    normal = json.loads(run_envgen("build", str(abide.spec), "--store", str(abide.store), "--json", check=True).stdout)
    store = tmp_path / "store-077"
    shutil.copytree(abide.store / "objects", store / "objects", copy_function=os.link)

    def envgen_077(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "envgen", args[0], "--store", str(store), *args[1:]],
                              capture_output=True, text=True, preexec_fn=lambda: os.umask(0o077))

    proc = envgen_077("build", str(abide.spec), "--json")
    assert proc.returncode == 0, proc.stderr
    strict = json.loads(proc.stdout)
    assert strict["tree_digest"] == normal["tree_digest"]
    podman("rmi", "-f", f"envgen/abide:{normal['snapshot_id'][:12]}", check=False)  # re-exported from this tree
    data = tmp_path / "data"
    data.mkdir()
    run_envgen("run", str(abide.spec), "--store", str(abide.store), "--bind", f"{data}:/data", "--",
               "abide-pipeline", "synth", "--out", "/data", "--seed", "3", "--n-subjects", "40",
               "--sites", "NYU,UM_1,USM", check=True)
    os.chmod(data, 0o755)
    outs = {}
    for name, runner, extra in (("022", run_envgen, ["--store", str(abide.store)]), ("077", envgen_077, [])):
        out = tmp_path / f"out-{name}"
        out.mkdir()
        os.chmod(out, 0o777)  # the image's user (uid 1000) writes here
        runtime = "bwrap" if name == "022" else "podman"
        proc = runner("run", str(abide.spec), *extra, "--runtime", runtime, "--bind", f"{data}:/data:ro",
                      "--bind", f"{out}:/out", "--", "abide-pipeline", "--input-dir", "/data", "--output-dir", "/out",
                      "--random-state", "0", "--num-folds", "3")
        assert proc.returncode == 0, proc.stderr
        outs[name] = out
    for f in ("inputs.npz", "phenotypes.csv", "args.yaml"):
        assert (outs["022"] / f).read_bytes() == (outs["077"] / f).read_bytes(), f
