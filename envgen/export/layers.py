"""Split an env tree into layers, and write each as a reproducible tar (+ gzip or zstd).

**Layering rule** (fixed, so that a change to one package rewrites as little as possible):

1. ``debian``: the Debian runtime, everything outside ``/opt/env`` and ``/.envgen``;
2. one layer per *family* of large, stable distributions that appear in the env,
   in the order of :data:`FAMILIES` (numpy+scipy, scikit-learn, pandas, the
   matplotlib stack, …);
3. ``cuda``: the CUDA user-space wheels (every distribution named ``nvidia-*``,
   PyPI's ``nvidia-*-cu12`` and the like) smaller than :data:`BIG_DIST_BYTES`,
   so that a CUDA variant's image shares every other layer with its CPU env;
4. one layer per other distribution whose installed size is at least
   :data:`BIG_DIST_BYTES` (``dist-<name>``; a big CUDA wheel such as
   ``dist-nvidia-cublas-cu12`` too), alphabetically;
5. ``python``: the rest of ``/opt/env`` (small distributions, the interpreter
   links, scripts no RECORD names);
6. ``project``: the spec's local projects and ``/.envgen`` (lock, snapshot, SBOM).

Files are mapped to distributions with each ``*.dist-info/RECORD``; bytecode in
``__pycache__`` follows its source file; the ``.dist-info`` directory follows its
distribution.  Every layer carries the parent directories of its entries, with
the same metadata, so layers can be applied in any order.

**Tar entries**: sorted by path bytes (so parents come first), PAX format, uid/gid
0 with empty names, mtimes clamped to the snapshot date as ints, no device or
time PAX records.  Store trees are read-only; images get the owner-write bit
back (the modes the build made before the store froze them) and ``/tmp`` gets
``1777`` so the non-root user can write there.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import stat
import struct
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from .. import layout
from ..tarfmt import entry

ENV_PREFIX = layout.ENV_PREFIX.lstrip("/")
ENVGEN_DIR = ".envgen"
BIG_DIST_BYTES = 4 * 1024 * 1024

# family layer name -> canonical distribution names that share it
FAMILIES: list[tuple[str, tuple[str, ...]]] = [
    ("numpy-scipy", ("numpy", "scipy")),
    ("torch", ("torch", "triton")),
    ("tensorflow", ("tensorflow", "keras", "tensorboard")),
    ("scikit-learn", ("scikit-learn",)),
    ("pandas", ("pandas", "pytz", "tzdata")),
    ("matplotlib", ("matplotlib", "pillow", "fonttools", "contourpy", "kiwisolver")),
]
_FAMILY_OF = {d: name for name, dists in FAMILIES for d in dists}
# NVIDIA's CUDA user-space wheels (nvidia-cuda-runtime-cu12, nvidia-cublas-cu12, …): the small ones share a layer
CUDA_PREFIX = "nvidia-"
CUDA_LAYER = "cuda"

WRITABLE_DIRS = {"tmp": 0o1777, "var/tmp": 0o1777}  # the tree has them 0555 (read-only, no sticky bit)


def writable_dirs(root: Path) -> dict[str, int]:
    """{"/tmp": 0o1777, …}: the mode every image gives those of :data:`WRITABLE_DIRS` the tree has as directories."""
    return {f"/{d}": m for d, m in sorted(WRITABLE_DIRS.items())
            if (Path(root) / d).is_dir() and not (Path(root) / d).is_symlink()}

GZIP = "gzip"
ZSTD = "zstd"
NONE = "none"
MEDIA_TYPES = {
    GZIP: "application/vnd.oci.image.layer.v1.tar+gzip",
    ZSTD: "application/vnd.oci.image.layer.v1.tar+zstd",
    NONE: "application/vnd.oci.image.layer.v1.tar",
}


@dataclass
class Extra:
    """A file that is not in the tree but goes into a layer (e.g. the SBOM)."""

    path: str  # relative, no leading slash
    data: bytes
    mode: int = 0o644


@dataclass
class Layer:
    name: str
    paths: list[str] = field(default_factory=list)  # relative paths of tree entries, sorted
    extras: list[Extra] = field(default_factory=list)
    comment: str = ""


def site_packages(root: Path) -> str | None:
    lib = Path(root) / ENV_PREFIX / "lib"
    if not lib.is_dir():
        return None
    for d in sorted(lib.iterdir()):
        if d.name.startswith("python") and (d / "site-packages").is_dir():
            return f"{ENV_PREFIX}/lib/{d.name}/site-packages"
    return None


def dist_files(root: Path) -> dict[str, str]:
    """{tree-relative path: canonical distribution name} from every ``*.dist-info/RECORD``."""
    root = Path(root)
    site = site_packages(root)
    owner: dict[str, str] = {}
    if site is None:
        return owner
    for info in sorted((root / site).glob("*.dist-info")):
        dist = canonicalize_name(info.name[: -len(".dist-info")].rsplit("-", 1)[0])
        owner[f"{site}/{info.name}"] = dist
        record = info / "RECORD"
        if not record.is_file():
            continue
        for line in record.read_text(errors="surrogateescape").splitlines():
            rel = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
            if not rel:
                continue
            path = posixpath.normpath(posixpath.join(site, rel))
            if path.startswith("../") or path.startswith("/"):
                continue
            owner[path] = dist
    return owner


def owner_of(rel: str, owners: dict[str, str]) -> str | None:
    """The distribution owning tree path *rel* (bytecode follows its source; dirs their files)."""
    if rel in owners:
        return owners[rel]
    parts = rel.split("/")
    if len(parts) >= 2 and parts[-2] == "__pycache__" and rel.endswith(".pyc"):
        src = "/".join(parts[:-2] + [parts[-1].split(".", 1)[0] + ".py"])
        if src in owners:
            return owners[src]
    # inside a .dist-info directory
    for i in range(len(parts) - 1, 0, -1):
        head = "/".join(parts[:i])
        if head.endswith(".dist-info") and head in owners:
            return owners[head]
    return None


def walk_tree(root: Path) -> list[tuple[str, os.stat_result]]:
    from ..builders.tree import walk

    return walk(Path(root))


def plan_layers(root: Path, entries: list[tuple[str, os.stat_result]] | None = None,
                owners: dict[str, str] | None = None, local: set[str] | frozenset = frozenset(),
                big: int = BIG_DIST_BYTES) -> list[Layer]:
    """Assign every entry of the tree at *root* to a layer (see the module docstring).

    *owners* maps tree paths to distribution names (default: read the RECORDs);
    *local* names the local projects' distributions (they go to the last layer).
    """
    root = Path(root)
    entries = walk_tree(root) if entries is None else entries
    owners = dist_files(root) if owners is None else owners
    local = {canonicalize_name(n) for n in local}
    owned: dict[str, str | None] = {}
    size_of: dict[str, int] = {}
    for rel, st in entries:
        if stat.S_ISDIR(st.st_mode):
            continue
        d = owner_of(rel, owners)
        owned[rel] = d
        if d is not None:
            size_of[d] = size_of.get(d, 0) + (st.st_size if stat.S_ISREG(st.st_mode) else 0)

    def layer_for_dist(d: str | None) -> str:
        if d is None:
            return "python"
        if d in local:
            return "project"
        if d in _FAMILY_OF:
            return _FAMILY_OF[d]
        if size_of.get(d, 0) >= big:
            return f"dist-{d}"
        if d.startswith(CUDA_PREFIX):
            return CUDA_LAYER
        return "python"

    assigned: dict[str, list[str]] = {}

    def add(layer: str, rel: str) -> None:
        assigned.setdefault(layer, []).append(rel)

    has_child: set[str] = set()
    for rel, _ in entries:
        parent = posixpath.dirname(rel)
        if parent:
            has_child.add(parent)
    for rel, st in entries:
        top = rel.split("/", 1)[0]
        if top == ENVGEN_DIR:
            name = "project"
        elif not (rel == ENV_PREFIX or rel.startswith(ENV_PREFIX + "/")):
            name = "debian"
        elif stat.S_ISDIR(st.st_mode):
            if rel in has_child:
                continue  # carried as a parent by the layers of its contents
            name = layer_for_dist(owner_of(rel, owners))
        else:
            name = layer_for_dist(owned[rel])
        add(name, rel)
    # parents of every entry, in every layer that has it
    out: list[Layer] = []
    order = ["debian"] + [n for n, _ in FAMILIES] + [CUDA_LAYER] \
        + sorted(n for n in assigned if n.startswith("dist-")) + ["python", "project"]
    for name in order:
        paths = assigned.get(name)
        if not paths and name != "project":
            continue
        full: set[str] = set(paths or [])
        for rel in paths or []:
            p = posixpath.dirname(rel)
            while p and p not in full:
                full.add(p)
                p = posixpath.dirname(p)
        out.append(Layer(name=name, paths=sorted(full, key=_key)))
    return out


def _key(rel: str) -> bytes:
    return rel.encode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------- streams


class HashingSink:
    """A file-like object that hashes and counts what goes through it, then forwards it."""

    def __init__(self, out):
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        if self.out is not None:
            self.out.write(data)
        return len(data)

    def flush(self):
        pass

    def hexdigest(self) -> str:
        return self.sha.hexdigest()


GZIP_HEADER = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"


class GzipStream:
    """gzip written by hand: fixed header (MTIME 0, XFL 0, OS 0xff), raw deflate, CRC32 + ISIZE."""

    def __init__(self, out, level: int = 6):
        self.out = out
        self.comp = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
        self.crc = 0
        self.isize = 0
        out.write(GZIP_HEADER)

    def write(self, data) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.isize += len(data)
        chunk = self.comp.compress(data)
        if chunk:
            self.out.write(chunk)
        return len(data)

    def flush(self):
        pass

    def close(self) -> None:
        self.out.write(self.comp.flush())
        self.out.write(struct.pack("<II", self.crc & 0xFFFFFFFF, self.isize & 0xFFFFFFFF))


class ZstdStream:
    """zstd, single-threaded (multi-threaded zstd output depends on the thread count)."""

    def __init__(self, out, level: int = 3):
        import zstandard

        self.out = out
        self.comp = zstandard.ZstdCompressor(level=level, threads=0, write_checksum=True).compressobj()

    def write(self, data) -> int:
        chunk = self.comp.compress(data)
        if chunk:
            self.out.write(chunk)
        return len(data)

    def flush(self):
        pass

    def close(self) -> None:
        self.out.write(self.comp.flush())


class _Plain:
    def __init__(self, out):
        self.out = out

    def write(self, data) -> int:
        return self.out.write(data)

    def flush(self):
        pass

    def close(self) -> None:
        pass


def compressor(kind: str, out, level: int | None = None):
    if kind == GZIP:
        return GzipStream(out, 6 if level is None else level)
    if kind == ZSTD:
        return ZstdStream(out, 3 if level is None else level)
    return _Plain(out)


# --------------------------------------------------------------------------- tar


def image_mode(rel: str, st: os.stat_result) -> int:
    if stat.S_ISLNK(st.st_mode):
        return 0o777
    if stat.S_ISDIR(st.st_mode) and rel in WRITABLE_DIRS:
        return WRITABLE_DIRS[rel]
    return stat.S_IMODE(st.st_mode) | 0o200


def write_tar(root: Path, layer: Layer, out, epoch: int, *, modes=image_mode) -> None:
    """Write *layer* of the tree at *root* as a reproducible tar to the file-like *out*."""
    root = Path(root)
    items: list[tuple[bytes, str, object]] = [(_key(p), p, None) for p in layer.paths]
    have = set(layer.paths)
    for ex in layer.extras:
        p = posixpath.dirname(ex.path)
        while p and p not in have:  # extras' parents, if the tree lacks them
            have.add(p)
            items.append((_key(p), p, "dir"))
            p = posixpath.dirname(p)
        items.append((_key(ex.path), ex.path, ex))
    items.sort(key=lambda t: t[0])
    seen_inodes: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for _, rel, extra in items:
            if isinstance(extra, Extra):
                tar.addfile(entry(rel, mtime=epoch, size=len(extra.data), mode=extra.mode), io.BytesIO(extra.data))
                continue
            if extra == "dir":
                tar.addfile(entry(rel, mtime=epoch, type=tarfile.DIRTYPE, mode=0o755))
                continue
            full = root / rel
            st = os.lstat(full)
            mtime = min(int(st.st_mtime), epoch)
            mode = modes(rel, st)
            if stat.S_ISDIR(st.st_mode):
                tar.addfile(entry(rel, mtime=mtime, type=tarfile.DIRTYPE, mode=mode))
            elif stat.S_ISLNK(st.st_mode):
                tar.addfile(entry(rel, mtime=mtime, type=tarfile.SYMTYPE, mode=mode, linkname=os.readlink(full)))
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen_inodes:
                    tar.addfile(entry(rel, mtime=mtime, type=tarfile.LNKTYPE, mode=mode, linkname=seen_inodes[key]))
                    continue
                if st.st_nlink > 1:
                    seen_inodes[key] = rel
                with open(full, "rb") as fh:
                    tar.addfile(entry(rel, mtime=mtime, size=st.st_size, mode=mode), fh)
            # sockets, fifos and devices are not part of an env tree: skipped


@dataclass
class LayerBlob:
    name: str
    diff_id: str  # sha256 hex of the uncompressed tar
    digest: str  # sha256 hex of the stored blob
    size: int
    media_type: str
    path: Path  # where the blob was written


def write_layer_blob(root: Path, layer: Layer, dest: Path, epoch: int, compression: str = GZIP,
                     level: int | None = None) -> LayerBlob:
    """Write *layer* compressed to the file *dest*; return its digests."""
    with open(dest, "wb") as fh:
        outer = HashingSink(fh)
        comp = compressor(compression, outer, level)
        inner = HashingSink(comp)
        write_tar(root, layer, inner, epoch)
        comp.close()
    return LayerBlob(layer.name, inner.hexdigest(), outer.hexdigest(), outer.size, MEDIA_TYPES[compression], dest)
