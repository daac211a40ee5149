"""Software Heritage identifiers (SWHIDs, ISO/IEC 18670) of the sources a snapshot holds, offline.

A SWHID v1 of a file or a directory is the git object id of its blob or tree:

- ``swh:1:cnt:<sha1>``: sha1 of ``b"blob <size>\\0" + bytes``;
- ``swh:1:dir:<sha1>``: sha1 of ``b"tree <size>\\0" + entries``, each entry
  ``b"<mode> <name>\\0" + <20-byte id>``, sorted by name with a directory's name
  compared as ``name + b"/"`` (git's order). Software Heritage's mode rules
  (``swh.model.from_disk``): a directory is ``40000``, a symbolic link
  ``120000`` (its blob is the link's target), a file with any execute bit
  ``100755``, any other file ``100644``. Unlike git, an empty directory is an
  entry (the empty tree).

What each identifier names (``docs/formats.md``, "Bundle"):

- ``directory``: the tree an archive unpacks to, its top directory included
  (``alpha-1.0/…`` for an sdist; the project's own files for a local source
  pack, whose entries are relative to the project). This is what Software
  Heritage's package loaders (PyPI, tarballs) archive as a release's directory,
  and what ``swh.model.from_disk.Directory.from_disk(path=DIR).swhid()`` gives
  for the unpacked DIR.
- ``content``: the archive file itself, byte for byte.

Computed here from the archive's members, without unpacking anything to disk:
``swh.model`` would do the same, but it would pull hypothesis, attrs-strict and
four more packages into envgen's runtime (and into every bundle's own runtime,
``envgen/selfhost``); the tests check these identifiers against it.
"""

from __future__ import annotations

import hashlib
import stat
import tarfile
import zipfile
from typing import IO, BinaryIO

CHUNK = 1 << 20
DIR_MODE, FILE_MODE, EXEC_MODE, LINK_MODE = b"40000", b"100644", b"100755", b"120000"
# snapshot roles whose objects are sources (their SWHIDs go in a bundle's manifest and CITATION.cff)
SOURCE_ROLES = ("local-source", "vcs-source", "sdist", "build-sdist")


def _git_hash(kind: bytes, data: bytes) -> bytes:
    return hashlib.sha1(b"%s %d\0" % (kind, len(data)) + data, usedforsecurity=False).digest()


def blob_id(fh: IO[bytes], size: int) -> bytes:
    """The git blob id (20 bytes) of the *size* bytes read from *fh*."""
    h = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    left = size
    while left > 0:
        b = fh.read(min(CHUNK, left))
        if not b:
            raise ValueError("short read")
        h.update(b)
        left -= len(b)
    return h.digest()


def content_swhid(fh: IO[bytes], size: int) -> str:
    return f"swh:1:cnt:{blob_id(fh, size).hex()}"


class _Tree:
    """A directory being assembled: name -> (_Tree | (mode, blob id))."""

    def __init__(self) -> None:
        self.entries: dict[bytes, _Tree | tuple[bytes, bytes]] = {}

    def subdir(self, parts: list[bytes]) -> _Tree:
        node = self
        for p in parts:
            child = node.entries.get(p)
            if not isinstance(child, _Tree):  # absent, or a file replaced by a directory (as extraction does)
                child = node.entries[p] = _Tree()
            node = child
        return node

    def id(self) -> bytes:
        def key(item):
            name, child = item
            return name + b"/" if isinstance(child, _Tree) else name

        body = b"".join(
            (b"%s %s\0" % (DIR_MODE, name) + child.id()) if isinstance(child, _Tree)
            else (b"%s %s\0" % (child[0], name) + child[1])
            for name, child in sorted(self.entries.items(), key=key))
        return _git_hash(b"tree", body)


def _parts(name: str) -> list[bytes] | None:
    """The path components of a member name, or None if unpacking it would leave the directory."""
    if name.startswith("/"):
        return None
    parts = [p.encode("utf-8", "surrogateescape") for p in name.split("/") if p not in ("", ".")]
    return None if b".." in parts else parts


def _file_mode(mode: int) -> bytes:
    return EXEC_MODE if mode & 0o111 else FILE_MODE


def tar_tree_id(fh: BinaryIO) -> bytes | None:
    """The tree id of what a (possibly compressed) tar read from *fh* unpacks to; None if it is not one.

    Later members replace earlier ones of the same name; a hard link has its
    target's content; members that are neither files, directories nor links
    (devices, fifos) and unsafe names (absolute, ``..``) make it None: such an
    archive does not unpack to a tree one can name.
    """
    root = _Tree()
    seen: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=fh, mode="r:*") as tf:
            for m in tf:
                parts = _parts(m.name)
                if parts is None:
                    return None
                if not parts:
                    continue
                if m.isdir():
                    root.subdir(parts)
                    continue
                parent = root.subdir(parts[:-1])
                if m.issym():
                    data = m.linkname.encode("utf-8", "surrogateescape")
                    parent.entries[parts[-1]] = (LINK_MODE, _git_hash(b"blob", data))
                elif m.islnk():
                    target = seen.get(m.linkname.rstrip("/"))
                    if target is None:
                        return None
                    parent.entries[parts[-1]] = (_file_mode(m.mode), target)
                    seen[m.name] = target
                elif m.isreg():
                    src = tf.extractfile(m)
                    assert src is not None
                    bid = blob_id(src, m.size)
                    parent.entries[parts[-1]] = (_file_mode(m.mode), bid)
                    seen[m.name] = bid
                else:
                    return None
    except (tarfile.TarError, EOFError, OSError, ValueError):
        return None
    return root.id()


def zip_tree_id(fh: BinaryIO) -> bytes | None:
    """The tree id of what a zip archive unpacks to (Unix modes where it records them); None if it is not one."""
    root = _Tree()
    try:
        with zipfile.ZipFile(fh) as zf:
            for info in zf.infolist():
                parts = _parts(info.filename)
                if parts is None:
                    return None
                if not parts:
                    continue
                unix = info.external_attr >> 16
                if info.is_dir():
                    root.subdir(parts)
                    continue
                parent = root.subdir(parts[:-1])
                with zf.open(info) as src:
                    if stat.S_ISLNK(unix):
                        parent.entries[parts[-1]] = (LINK_MODE, _git_hash(b"blob", src.read()))
                    else:
                        parent.entries[parts[-1]] = (_file_mode(unix), blob_id(src, info.file_size))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        return None
    return root.id()


def archive_swhids(fh: BinaryIO, size: int) -> dict[str, str]:
    """``{"content": swh:1:cnt:…, "directory": swh:1:dir:…}`` of an archive file (seekable *fh*).

    ``directory`` is left out when the file is neither a tar (plain, gzip, bzip2,
    xz) nor a zip, or does not unpack to a tree (see :func:`tar_tree_id`).
    """
    out = {"content": content_swhid(fh, size)}
    fh.seek(0)
    head = fh.read(4)
    fh.seek(0)
    tree = zip_tree_id(fh) if head.startswith(b"PK\x03\x04") else tar_tree_id(fh)
    if tree is not None:
        out["directory"] = f"swh:1:dir:{tree.hex()}"
    return out


def source_swhids(store, objects: list[dict]) -> list[dict]:
    """One entry per source object of a snapshot (roles in :data:`SOURCE_ROLES`), in the snapshot's order.

    Each: ``{"object": sha256, "role", "name", "content": swh:1:cnt:…, "directory": swh:1:dir:…}``
    (``directory`` only where the archive unpacks to a tree).
    """
    out = []
    done: set[tuple[str, str]] = set()
    for o in objects:
        if o["role"] not in SOURCE_ROLES or (o["sha256"], o["role"]) in done:
            continue
        done.add((o["sha256"], o["role"]))
        with store.open(o["sha256"]) as fh:
            ids = archive_swhids(fh, store.size_of(o["sha256"]))
        out.append({"object": o["sha256"], "role": o["role"], "name": o["name"], **ids})
    return out
