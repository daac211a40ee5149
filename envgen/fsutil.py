"""Small filesystem helpers: atomic writes, tree removal and canonical JSON.

Every file envgen writes goes through :func:`atomic_output` (streamed) or
:func:`atomic_write` (bytes in hand); every directory it publishes goes
through :func:`atomic_dir`.  Readers then see the old result or the new one,
never a half-written one, and a crash leaves only a temporary name behind.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any, BinaryIO


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    import hashlib  # here: its OpenSSL set-up costs start-up time that `envgen run` without inputs need not pay

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(obj: Any) -> bytes:
    """The single JSON serialisation envgen uses inside artifacts."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def pretty_json(obj: Any) -> str:
    """Deterministic, human-readable JSON (sorted keys, two-space indent)."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | os.PathLike, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes *path* when the block ends without an exception.

    The bytes go to a temporary file in the same directory; on success it is
    fsynced, given *mode* (never the umask's), and renamed over *path*; on any
    error it is removed and *path* is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # here, not at the top: `envgen run` imports this module and writes no such file

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, data: bytes | str, mode: int = 0o644) -> Path:
    """Write *data* to *path* so that readers see the old file or the new one, never a mix."""
    if isinstance(data, str):
        data = data.encode()
    with atomic_output(path, mode) as fh:
        fh.write(data)
    return Path(path)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces *path* (file or directory) when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if path.is_dir() and not path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.rename(path, old / "x")
            os.rename(tmp, path)
            remove_tree(old)
        else:
            if path.exists() or path.is_symlink():
                path.unlink()
            os.rename(tmp, path)
    except BaseException:
        remove_tree(tmp)
        raise
    fsync_dir(path.parent)


def make_writable(root: str | os.PathLike) -> None:
    """Give the owner write and search permission on every directory under *root* (so it can be removed)."""
    root = str(root)
    if not os.path.isdir(root) or os.path.islink(root):
        return
    for dirpath, dirnames, _ in os.walk(root):
        os.chmod(dirpath, stat.S_IMODE(os.lstat(dirpath).st_mode) | 0o700)
        for name in dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, stat.S_IMODE(os.lstat(p).st_mode) | 0o700)


def remove_tree(path: str | os.PathLike) -> None:
    """Remove a file or a directory tree, read-only parts included; a missing path is fine."""
    p = Path(path)
    if p.is_symlink() or p.is_file():
        p.unlink()
        return
    if not p.exists():
        return
    make_writable(p)
    import shutil

    shutil.rmtree(p, ignore_errors=True)
