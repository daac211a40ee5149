"""Unpack Debian .debs into a root filesystem, without maintainer scripts.

A .deb is an ``ar`` archive holding ``debian-binary``, ``control.tar.*`` and
``data.tar.*``; only the data member is unpacked.  Paths that would leave the
root are refused; device nodes and fifos are skipped (a rootless tree cannot
hold them, and the runtimes provide /dev).  Owners are not kept (the tree is
owned by whoever builds it, and exports normalise to 0:0); modes keep their
permission bits, without setuid/setgid.
"""

from __future__ import annotations

import io
import lzma
import os
import posixpath
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from ..errors import EnvgenError

AR_MAGIC = b"!<arch>\n"


def ar_members(fh: BinaryIO, label: str):
    """Yield (name, bytes) for each member of an ar archive."""
    if fh.read(8) != AR_MAGIC:
        raise EnvgenError(f"{label}: not a Debian package (no ar header)")
    while True:
        header = fh.read(60)
        if not header:
            return
        if len(header) < 60 or header[58:60] != b"`\n":
            raise EnvgenError(f"{label}: corrupt ar member header")
        name = header[0:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        data = fh.read(size)
        if len(data) != size:
            raise EnvgenError(f"{label}: truncated ar member {name}")
        if size % 2:
            fh.read(1)
        yield name, data


def _open_data_tar(name: str, data: bytes, label: str) -> tarfile.TarFile:
    if name.endswith(".xz"):
        raw = lzma.decompress(data)
    elif name.endswith(".zst"):
        import zstandard

        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    elif name.endswith(".gz"):
        import gzip

        raw = gzip.decompress(data)
    elif name == "data.tar":
        raw = data
    else:
        raise EnvgenError(f"{label}: unsupported data member {name}")
    return tarfile.open(fileobj=io.BytesIO(raw), mode="r:")


def member_path(name: str) -> str:
    """A tar member name as a path relative to the root: ``./usr/bin/x`` -> ``usr/bin/x``.

    Only a leading ``./`` (or ``/``) is removed; ``./.hidden`` stays ``.hidden``
    and ``..`` components are kept for :func:`_safe_rel` to refuse.
    """
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/") if name not in (".", "") else ""


def _safe_rel(name: str, label: str) -> str | None:
    """*name* relative to the root, None for the root itself; a name that leaves the root is refused."""
    rel = member_path(name)
    if rel in ("", "."):
        return None
    if ".." in rel.split("/"):
        raise EnvgenError(f"{label}: member {name!r} leaves the root")
    norm = posixpath.normpath(rel)
    return None if norm == "." else norm


def open_data(fh: BinaryIO, label: str) -> tarfile.TarFile:
    """The data member of a .deb (what it installs), as an open tar archive."""
    for name, data in ar_members(fh, label):
        if name.startswith("data.tar"):
            return _open_data_tar(name, data, label)
    raise EnvgenError(f"{label}: no data.tar member")


class Placer:
    """Puts entries into a root filesystem the way :func:`extract_deb` unpacks a member.

    One home for the rules, so that a .deb unpacked straight into a tree and a
    .deb's install unit (:mod:`envgen.builders.units`) merged into a tree give
    the same tree: a directory where the root already has a symbolic link is
    skipped (the link is kept, as a merged-/usr link is); parents are created
    without following a link out of the root; an existing file or link is
    replaced, an existing directory is never replaced by a file.

    One placer serves a whole tree (every .deb merged into it): it remembers
    each directory it has made or resolved, so the parents of a tree's 1,700
    files cost one ``mkdir`` each rather than one per file and level.  A
    directory once made stays one (nothing here removes a directory); the only
    entry that can change what a remembered path resolves to is a symbolic
    link replaced by another, and replacing a link forgets everything.
    """

    def __init__(self, root: Path, label: str = ""):
        self.root = Path(root)
        self.label = label
        self._dirs: dict[str, Path | None] = {}     # rel -> the directory made there, None: a link kept
        self._parents: dict[str, Path] = {"": self.root}  # rel of a parent -> where its children go

    def directory(self, rel: str) -> Path | None:
        """Make directory *rel* (and its parents); None when the root has a link there (then left alone)."""
        if rel in self._dirs:
            return self._dirs[rel]
        head, _, name = rel.rpartition("/")
        target = self._parent(head) / name
        made: Path | None
        if target.is_symlink():
            made = None
        else:
            target.mkdir(exist_ok=True)
            made = self._parents[rel] = target
        self._dirs[rel] = made
        return made

    def _parent(self, rel_dir: str, depth: int = 0) -> Path:
        """The directory a member under *rel_dir* goes into, made if missing.  A link among the parents is
        followed inside the root, as if the root were ``/`` (an absolute target, or ``..`` above the root,
        stays in it), so nothing is ever made or written outside the root."""
        cur = self._parents.get(rel_dir)
        if cur is not None:
            return cur
        head, _, part = rel_dir.rpartition("/")
        cur = self._parent(head, depth) / part
        if cur.is_symlink():
            if depth >= 40:
                raise EnvgenError(f"{self.label}: too many levels of symbolic links at {rel_dir}")
            link = os.readlink(cur)
            base = str(cur.parent.relative_to(self.root))
            target = posixpath.normpath(link.lstrip("/") if link.startswith("/") else posixpath.join(base, link))
            while target == ".." or target.startswith("../"):
                target = target[3:]
            cur = self._parent("" if target in (".", "") else target, depth + 1)
        else:
            cur.mkdir(exist_ok=True)
        self._parents[rel_dir] = cur
        return cur

    def prepare(self, rel: str, label: str | None = None) -> Path:
        """The path where a non-directory entry *rel* goes: parents made, any file or link there removed."""
        self.label = label or self.label
        head, _, name = rel.rpartition("/")
        target = self._parent(head) / name  # where the parents' links lead inside the root, never outside
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return target
        if stat.S_ISDIR(st.st_mode):
            raise EnvgenError(f"{self.label}: {rel} would replace a directory")
        target.unlink()
        if stat.S_ISLNK(st.st_mode):  # a link the remembered paths may have resolved through
            self._dirs.clear()
            self._parents = {"": self.root}
        return target


def extract_deb(fh: BinaryIO, root: Path, label: str) -> list[str]:
    """Unpack the data member of one .deb into *root*; return the paths written."""
    data_tar = open_data(fh, label)
    place = Placer(root, label)
    written: list[str] = []
    with data_tar:
        for m in data_tar.getmembers():
            rel = _safe_rel(m.name, label)
            if rel is None:
                continue
            if m.isdir():
                made = place.directory(rel)
                if made is not None:
                    os.chmod(made, (m.mode & 0o777) | 0o700)
                continue
            target = place.prepare(rel)
            if m.issym():
                os.symlink(m.linkname, target)
            elif m.islnk():
                src_rel = _safe_rel(m.linkname, label)
                if src_rel is None:
                    raise EnvgenError(f"{label}: member {m.name!r} is a hard link to the root")
                os.link(root / src_rel, target)
            elif m.isfile():
                src = data_tar.extractfile(m)
                if src is None:
                    raise EnvgenError(f"{label}: member {m.name!r} has no content")
                with open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                os.chmod(target, m.mode & 0o777)
            else:
                continue  # devices, fifos
            written.append(rel)
    return written
