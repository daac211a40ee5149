"""``envgen diff``'s readers: a lock, a bundle or an image, read into one :class:`Closure`.

Every reader yields the same thing: the lock the environment was made from
(PyPI wheels and sdists, build requirements and tools, Debian runtime and
build packages), the snapshot's local projects by their source pack's sha256
(bundles and images), and the image's layers by digest (OCI layouts, SIF
files). :func:`diff_closures` then compares two of them with the one
classifier of :mod:`envgen.lock.diff`, whatever their kinds:

- a lock or spec: the lock;
- a bundle: ``snapshot.json`` and the lock object it names, read from the tar
  (nothing is unpacked or restored);
- an OCI layout written by ``envgen export``: its image manifest's layers
  (named by their ``dev.envgen.layer`` annotation) and ``/.envgen/pylock.toml``
  and ``/.envgen/snapshot.json`` from the layer that holds them;
- a SIF file written by envgen: its squashfs partition (one "layer",
  ``partition``, by the sha256 its labels record) and the same two files, read
  with ``unsquashfs``.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .errors import EnvgenError, FormatError
from .layout import ENVGEN_DIR
from .lock import pylock
from .lock.diff import classify, diff_build, diff_locks

LOCK_IN_TREE = f"{ENVGEN_DIR}/pylock.toml"
SNAPSHOT_IN_TREE = f"{ENVGEN_DIR}/snapshot.json"
KINDS = ("lock", "bundle", "oci", "sif")


@dataclass
class Closure:
    """What one side of a diff holds."""

    label: str
    kind: str                     # one of KINDS
    lock: pylock.Lock
    # local project name -> the sha256 of its source pack (bundles and images; a lock names no hash)
    local: dict[str, str] | None = None
    # layer name -> digest (images)
    layers: dict[str, str] | None = None
    digest: str | None = None     # the image manifest's digest, or the bundle's snapshot id
    extra: dict = field(default_factory=dict)


def _local_of(snapshot: dict) -> dict[str, str]:
    return {o["name"]: o["sha256"] for o in snapshot.get("objects", []) if o.get("role") == "local-source"}


def _parse_snapshot(data: bytes, where: str) -> dict:
    try:
        doc = json.loads(data)
    except ValueError:
        raise FormatError(f"{where}: its snapshot manifest is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("objects"), list):
        raise FormatError(f"{where}: its snapshot manifest lists no objects")
    return doc


def _parse_lock(data: bytes, where: str) -> pylock.Lock:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise FormatError(f"{where}: its lock is not UTF-8 text") from None
    return pylock.loads(text, Path(where))


# --------------------------------------------------------------------------- bundles


def read_bundle(path: Path) -> Closure:
    from .archive import read_manifest
    from .archive.members import READ_ERRORS, SNAPSHOT, open_decompressed

    manifest = read_manifest(path)
    # pass 1: the snapshot manifest (it names the lock object); pass 2: the lock
    snap = _bundle_member(path, lambda name: name == SNAPSHOT, open_decompressed, READ_ERRORS)
    if snap is None:
        raise FormatError(f"{path}: the bundle has no {SNAPSHOT}")
    doc = _parse_snapshot(snap, str(path))
    lock_sha = next((o["sha256"] for o in doc["objects"] if o.get("role") == "lock"), None)
    if lock_sha is None:
        raise FormatError(f"{path}: the bundle's snapshot names no lock")
    data = _bundle_member(path, lambda name: name == f"objects/sha256/{lock_sha}", open_decompressed, READ_ERRORS)
    if data is None:
        raise FormatError(f"{path}: the bundle lacks its lock (object {lock_sha[:16]}…)")
    return Closure(str(path), "bundle", _parse_lock(data, f"{path}:lock"), local=_local_of(doc),
                   digest=manifest.get("snapshot-id"))


def _bundle_member(path: Path, want, open_decompressed, read_errors) -> bytes | None:
    try:
        with open(path, "rb") as fh, tarfile.open(fileobj=open_decompressed(fh), mode="r|") as tf:
            for m in tf:
                if want(m.name) and m.isreg():
                    src = tf.extractfile(m)
                    return src.read() if src is not None else b""
    except read_errors:
        raise FormatError(f"{path}: damaged bundle (run `envgen restore` to see what is wrong)") from None
    return None


# --------------------------------------------------------------------------- OCI layouts


def _layer_stream(fh: IO[bytes], media_type: str) -> IO[bytes]:
    if media_type.endswith("+gzip"):
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    if media_type.endswith("+zstd"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
    return fh


def _norm(name: str) -> str:
    while name.startswith(("./", "/")):
        name = name[2:] if name.startswith("./") else name[1:]
    return name


def read_oci(path: Path) -> Closure:
    from .export.oci import blob_path, image_manifest

    def blob(digest: str) -> Path:
        try:
            return blob_path(path, digest)
        except ValueError:
            raise FormatError(f"{path}: malformed digest {digest!r}") from None

    desc, raw = image_manifest(path)  # index.json and the manifest it names, checked against its digest
    try:
        layers = json.loads(raw)["layers"]
    except (ValueError, KeyError, TypeError):
        raise FormatError(f"{path}: not an OCI image layout with an image manifest") from None
    names: dict[str, str] = {}
    for i, layer in enumerate(layers):
        name = (layer.get("annotations") or {}).get("dev.envgen.layer") or f"layer-{i}"
        names[name if name not in names else f"{name}-{i}"] = layer["digest"]
    found: dict[str, bytes] = {}
    for layer in reversed(layers):  # the project layer (last) holds /.envgen
        try:
            with open(blob(layer["digest"]), "rb") as fh, \
                    tarfile.open(fileobj=_layer_stream(fh, layer.get("mediaType", "")), mode="r|") as tf:
                for member in tf:
                    name = _norm(member.name)
                    if name in (LOCK_IN_TREE, SNAPSHOT_IN_TREE) and member.isreg() and name not in found:
                        src = tf.extractfile(member)
                        found[name] = src.read() if src is not None else b""
        except (OSError, tarfile.TarError, EOFError) as exc:
            raise FormatError(f"{path}: layer {layer['digest']}: unreadable ({exc})") from None
        if len(found) == 2:
            break
    if LOCK_IN_TREE not in found:
        raise FormatError(f"{path}: the image has no /{LOCK_IN_TREE}", hint="compare images envgen exported")
    snap = _parse_snapshot(found[SNAPSHOT_IN_TREE], str(path)) if SNAPSHOT_IN_TREE in found else {}
    return Closure(str(path), "oci", _parse_lock(found[LOCK_IN_TREE], f"{path}:/{LOCK_IN_TREE}"),
                   local=_local_of(snap) if snap else None, layers=names, digest=desc["digest"])


# --------------------------------------------------------------------------- SIF files


def read_sif(path: Path) -> Closure:
    from . import proc
    from .export import sif as S

    info = S.read_sif(path)
    part = info.primary()
    digest = info.labels().get("dev.envgen.partition-sha256")
    if not digest:
        import hashlib

        h = hashlib.sha256()
        with open(path, "rb") as fh:
            fh.seek(part.offset)
            left = part.size
            while left > 0:
                b = fh.read(min(1 << 20, left))
                if not b:
                    break
                h.update(b)
                left -= len(b)
        digest = h.hexdigest()
    tool = shutil.which("unsquashfs")
    if tool is None:
        raise EnvgenError("unsquashfs is not installed; it is needed to read a SIF's lock",
                          hint="apt-get install squashfs-tools")
    with tempfile.TemporaryDirectory(prefix="envgen-diff-") as tmp:
        dest = Path(tmp) / "root"
        proc.run([tool, "-no-progress", "-quiet", "-no-xattrs", "-d", str(dest), "-o", str(part.offset),
                  str(path), f"/{ENVGEN_DIR}"], "unsquashfs", lines=2)
        lock_file, snap_file = dest / LOCK_IN_TREE, dest / SNAPSHOT_IN_TREE
        if not lock_file.is_file():
            raise FormatError(f"{path}: the image has no /{LOCK_IN_TREE}", hint="compare images envgen exported")
        lock = _parse_lock(lock_file.read_bytes(), f"{path}:/{LOCK_IN_TREE}")
        snap = _parse_snapshot(snap_file.read_bytes(), str(path)) if snap_file.is_file() else {}
    digest = digest if ":" in digest else f"sha256:{digest}"
    return Closure(str(path), "sif", lock, local=_local_of(snap) if snap else None,
                   layers={"partition": digest}, digest=digest)


# --------------------------------------------------------------------------- any of them


def read_closure(path: str | Path, ui=None) -> Closure:
    """Read *path*: a spec or lock, a bundle, an OCI layout or a SIF file (by what it is, not its name)."""
    from .archive import is_bundle

    p = Path(path)
    if p.is_dir():
        if (p / "index.json").is_file() and (p / "blobs").is_dir():
            return read_oci(p)
        raise EnvgenError(f"{p}: a directory that is not an OCI image layout",
                          hint="give a spec, a lock, a bundle, an OCI layout or a SIF file")
    if not p.is_file():
        raise EnvgenError(f"{p}: no such file", hint="give a spec, a lock, a bundle, an OCI layout or a SIF file")
    with open(p, "rb") as fh:
        head = fh.read(64)
    if head[0x20:0x2A] == b"SIF_MAGIC\0":
        return read_sif(p)
    if is_bundle(p):
        return read_bundle(p)
    from .lock import load_lock_for

    _, lock = load_lock_for(p, ui)
    return Closure(str(p), "lock", lock)


def diff_closures(a: Closure, b: Closure) -> dict:
    """``{"changes", "build_changes", "layer_changes"}`` from *a* to *b*.

    ``changes``: PyPI and Debian runtime packages (the lock's), and local
    projects (``local-source``) whose source pack changed, where both sides
    know them (bundles and images). ``build_changes``: source builds, build
    tools, Debian build packages. ``layer_changes``: image layers by name,
    where both sides are images.
    """
    changes = diff_locks(a.lock, b.lock)
    if a.local is not None and b.local is not None:
        def local(c: Closure) -> dict:
            return {n: (None, (f"sha256:{sha}",)) for n, sha in (c.local or {}).items()}

        changes += classify("local-source", local(a), local(b))
    layers: list[dict] = []
    if a.layers is not None and b.layers is not None:
        layers = classify("layer", {n: (None, (d,)) for n, d in a.layers.items()},
                          {n: (None, (d,)) for n, d in b.layers.items()})
    return {"changes": changes, "build_changes": diff_build(a.lock, b.lock), "layer_changes": layers}
