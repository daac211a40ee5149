"""What a source tree declares about its build (PEP 517/518), and safe unpacking of sdists.

An sdist is a ``.tar.gz`` (PEP 625) or, for old projects, a ``.zip``, holding
one top-level directory ``NAME-VERSION/``.  Its ``pyproject.toml`` is read
straight from the archive; nothing is written to disk for that.  When a
source tree has to be unpacked (to run its backend's hooks) every member is
checked first: no absolute path, no ``..``, no link leaving the tree, no
device or fifo.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LockError

# PEP 517: a source tree without [build-system] is built by setuptools' legacy backend.
DEFAULT_BACKEND = "setuptools.build_meta:__legacy__"
DEFAULT_REQUIRES = ["setuptools>=40.8.0"]
PYPROJECT_MAX = 4 << 20  # a pyproject.toml larger than this is not read


@dataclass
class BuildSystem:
    """The ``[build-system]`` of a source tree (or PEP 517's default when there is none)."""

    requires: list[str]
    backend: str
    backend_path: list[str] = field(default_factory=list)
    declared: bool = True  # False: no pyproject.toml or no [build-system]: the setuptools default


def default_build_system() -> BuildSystem:
    return BuildSystem(list(DEFAULT_REQUIRES), DEFAULT_BACKEND, [], declared=False)


def parse_build_system(text: str | None, where: str) -> BuildSystem:
    """The build system that the text of a ``pyproject.toml`` declares (``None``: there is no file)."""
    if text is None:
        return default_build_system()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"{where}: invalid TOML: {exc}") from None
    bs = data.get("build-system")
    if bs is None:
        return default_build_system()
    if not isinstance(bs, dict):
        raise LockError(f"{where}: [build-system] is not a table")
    requires = bs.get("requires")
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise LockError(f"{where}: [build-system] requires: expected a list of PEP 508 strings "
                        "(PEP 518 makes it mandatory)")
    backend = bs.get("build-backend", DEFAULT_BACKEND)
    if not isinstance(backend, str) or not backend.strip():
        raise LockError(f"{where}: [build-system] build-backend: expected a module[:object] string")
    backend_path = bs.get("backend-path", [])
    if not isinstance(backend_path, list) or not all(isinstance(p, str) for p in backend_path):
        raise LockError(f"{where}: [build-system] backend-path: expected a list of relative paths")
    for p in backend_path:
        if _unsafe(p) or posixpath.normpath(p).startswith(".."):
            raise LockError(f"{where}: [build-system] backend-path: {p!r} leaves the source tree")
    return BuildSystem([r.strip() for r in requires], backend.strip(), list(backend_path), declared=True)


# --------------------------------------------------------------------------- archives


def _unsafe(name: str) -> str | None:
    """Why a member name is unsafe, or None."""
    if not name or "\0" in name or "\\" in name:
        return "malformed name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in name.split("/"):
        return "path with '..'"
    return None


def archive_kind(filename: str) -> str:
    low = filename.lower()
    if low.endswith(".zip"):
        return "zip"
    if low.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")):
        return "tar"
    raise LockError(f"{filename}: not an sdist archive (.tar.gz or .zip)")


def _names(data: bytes, filename: str) -> list[str]:
    try:
        if archive_kind(filename) == "zip":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                return zf.namelist()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            return tf.getnames()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise LockError(f"{filename}: unreadable sdist ({exc})") from None


def _top(names: list[str]) -> str:
    """The one top-level directory of the archive (``NAME-VERSION``), or "" when there is none."""
    tops = set()
    for n in names:
        n = _norm(n)
        parts = [p for p in n.split("/") if p not in ("", ".")]
        if not parts:
            continue
        if len(parts) == 1 and not n.endswith("/"):
            # a file at the top: only fine if it is the directory entry itself
            tops.add(("file", parts[0]))
        else:
            tops.add(("dir", parts[0]))
    dirs = {t for k, t in tops if k == "dir"}
    files = {t for k, t in tops if k == "file"} - dirs
    return dirs.pop() if len(dirs) == 1 and not files else ""


def read_member(data: bytes, filename: str, relpath: str, limit: int = PYPROJECT_MAX) -> str | None:
    """The text of *relpath* (relative to the archive's top directory), None when absent."""
    names = _names(data, filename)
    top = _top(names)
    want = f"{top}/{relpath}" if top else relpath
    try:
        if archive_kind(filename) == "zip":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist():
                    if _norm(info.filename) == want and not info.is_dir():
                        if info.file_size > limit:
                            raise LockError(f"{filename}: {relpath} is larger than {limit} bytes")
                        return zf.read(info).decode("utf-8")
            return None
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            for m in tf:
                if _norm(m.name) == want and m.isreg():
                    if m.size > limit:
                        raise LockError(f"{filename}: {relpath} is larger than {limit} bytes")
                    fh = tf.extractfile(m)
                    return fh.read().decode("utf-8") if fh is not None else None
            return None
    except UnicodeDecodeError:
        raise LockError(f"{filename}: {relpath} is not UTF-8 text") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise LockError(f"{filename}: unreadable sdist ({exc})") from None


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def sdist_build_system(data: bytes, filename: str) -> BuildSystem:
    """The build system an sdist declares in its ``pyproject.toml`` (the setuptools default without one)."""
    return parse_build_system(read_member(data, filename, "pyproject.toml"), f"{filename}: pyproject.toml")


def unpack_sdist(data: bytes, filename: str, dest: Path) -> int:
    """Unpack an sdist's top directory into *dest* (which must exist and be empty); returns the file count.

    Every member is checked before anything is written: a name that is
    absolute or holds ``..``, a link (symbolic or hard) whose target leaves the
    tree, or a member that is not a file, directory or link refuses the whole
    archive.
    """
    names = _names(data, filename)
    top = _top(names)

    def rel_of(name: str) -> str | None:
        why = _unsafe(_norm(name))
        if why:
            raise LockError(f"{filename}: refused member {name!r}: {why}")
        n = _norm(name).rstrip("/")
        if top:
            if n == top:
                return None
            n = n[len(top) + 1:]
        n = posixpath.normpath(n) if n else ""
        return None if n in ("", ".") else n

    def inside(base_rel: str, target: str, links: set[str]) -> bool:
        """Whether a link at *base_rel* to *target* stays in the tree, judged lexically.

        Judging lexically is exact only when no directory on the way is itself
        a link, so a target passing through another link member is refused.
        """
        if not target or target.startswith("/") or "\0" in target:
            return False
        parts: list[str] = [p for p in posixpath.dirname(base_rel).split("/") if p]
        for i, comp in enumerate(target.split("/")):
            if comp in ("", "."):
                continue
            if comp == "..":
                if not parts:
                    return False
                parts.pop()
                continue
            parts.append(comp)
            if i < len(target.split("/")) - 1 and "/".join(parts) in links:
                return False
        return True

    count = 0
    if archive_kind(filename) == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            plan_zip = []
            for info in zf.infolist():
                rel = rel_of(info.filename)
                if rel is None:
                    continue
                mode = (info.external_attr >> 16) & 0xFFFF
                if mode and stat.S_ISLNK(mode):
                    raise LockError(f"{filename}: refused member {info.filename!r}: a symbolic link in a zip")
                plan_zip.append((rel, info))
            for rel, info in plan_zip:
                target = dest / rel
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                count += 1
        return count
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        members = tf.getmembers()
        links = {r for r in (rel_of(m.name) for m in members if m.issym()) if r is not None}
        plan = []
        for m in members:
            rel = rel_of(m.name)
            if rel is None:
                continue
            if m.issym():
                if not inside(rel, m.linkname, links):
                    raise LockError(f"{filename}: refused member {m.name!r}: a link out of the tree")
            elif m.islnk():
                lrel = rel_of(m.linkname)
                if lrel is None:
                    raise LockError(f"{filename}: refused member {m.name!r}: a hard link to the tree's top")
            elif not (m.isreg() or m.isdir()):
                raise LockError(f"{filename}: refused member {m.name!r}: not a file, directory or link")
            plan.append((rel, m))
        for rel, m in plan:
            target = dest / rel
            _mkparents(dest, rel, filename)
            if m.isdir():
                if target.is_symlink():
                    raise LockError(f"{filename}: refused member {m.name!r}: a directory over a link")
                target.mkdir(exist_ok=True)
                continue
            if target.is_symlink() or target.exists():
                if target.is_dir() and not target.is_symlink():
                    raise LockError(f"{filename}: refused member {m.name!r}: it would replace a directory")
                target.unlink()
            if m.issym():
                os.symlink(m.linkname, target)
            elif m.islnk():
                src_rel = rel_of(m.linkname)
                assert src_rel is not None
                src_path = dest / src_rel
                if src_path.is_symlink() or not src_path.is_file():
                    raise LockError(f"{filename}: refused member {m.name!r}: a hard link to no regular file")
                os.link(src_path, target)
            else:
                fh = tf.extractfile(m)
                with open(target, "wb") as out:
                    while fh is not None and (chunk := fh.read(1 << 20)):
                        out.write(chunk)
                os.chmod(target, 0o755 if m.mode & 0o111 else 0o644)
                count += 1
    return count


def _mkparents(dest: Path, rel: str, filename: str) -> None:
    """Create the parents of *rel* under *dest*, refusing to pass through a symbolic link."""
    cur = dest
    for part in Path(rel).parent.parts:
        cur = cur / part
        if cur.is_symlink():
            raise LockError(f"{filename}: refused member {rel!r}: its directory is a symbolic link")
        cur.mkdir(exist_ok=True)
