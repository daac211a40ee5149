"""The content-addressed store.

Layout (everything below the store root)::

    envgen-store.json        {"format-version": 1, "kind": "envgen-store"}
    objects/sha256/<hex>     one file per object, named by the sha256 of its bytes, mode 0444
    roots/<id>.json          gc roots (snapshot manifests); each lists ``objects[].sha256``
    tmp/                     in-flight writes and restore staging (same filesystem as objects/)
    locks/                   flock files: ``store.lock`` (shared by writers, exclusive for gc
                             and tmp cleaning) and ``<hex>.lock`` (one writer per object)

Later stages may add top-level entries (``trees/``, ``records.sqlite``); nothing
here touches names it does not know, except that gc also removes the install
units (``units/<key>/``, :mod:`envgen.builders.units`) that no built tree
(``trees/<key>/meta.json``, ``"units"``) lists.

An object is written to ``tmp/``, hashed while written, checked against the
expected hash, fsynced and renamed into place, so an object is either whole
and correct or absent.  Several processes may share one store.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import formats
from ..errors import EnvgenError, FormatError, HashMismatch, NewerFormatError, StoreError
from ..fsutil import atomic_write, canonical_json, fsync_dir, remove_tree
from ..paths import StorePaths, store_dir
from ..values import Value

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import BinaryIO, TypeGuard

HEX64 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20  # 1 MiB: large reads for hashing and copying
VERIFY_CHUNK = 4 << 20


def is_sha256(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(HEX64.match(value))


class VerifyReport(Value):
    def __init__(self, checked: int = 0, bytes: int = 0, corrupt: list[str] | None = None,
                 missing: list[str] | None = None):
        self.checked = checked
        self.bytes = bytes
        self.corrupt: list[str] = corrupt if corrupt is not None else []  # objects whose bytes no longer match
        self.missing: list[str] = missing if missing is not None else []

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.missing


class ObjectWriter:
    """A file in ``tmp/`` that becomes an object on :meth:`commit`.

    Hashes while writing.  Use as a context manager: leaving without commit
    (an exception, a mismatch) removes the temporary file.
    """

    def __init__(self, store: Store, expected_sha: str | None = None, label: str = "object"):
        self.store = store
        self.expected = expected_sha
        self.label = label
        import hashlib  # not at the top: `envgen run` opens the store, and hashes nothing when it has no binds

        self.hasher = hashlib.sha256()
        self.size = 0
        import tempfile  # not at the top: `envgen run` opens the store but rarely writes to it

        fd, tmp = tempfile.mkstemp(prefix="obj-", suffix=".part", dir=store.tmp)
        self.tmp = Path(tmp)
        self.fh = os.fdopen(fd, "wb")
        self.sha256: str | None = None

    def write(self, data) -> int:
        self.hasher.update(data)
        self.fh.write(data)
        n = len(data)
        self.size += n
        return n

    def commit(self) -> str:
        actual = self.hasher.hexdigest()
        if self.expected is not None and actual != self.expected:
            self.abort()
            raise HashMismatch(self.label, self.expected, actual)
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        self.store._install(self.tmp, actual)
        self.sha256 = actual
        return actual

    def abort(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.sha256 is None:
            self.abort()
        return False


class Store:
    def __init__(self, path: str | os.PathLike | None = None, create: bool = True):
        self.root = Path(path) if path is not None else store_dir(None)
        self.paths = StorePaths(self.root)
        self.objects = self.paths.objects
        self.tmp = self.paths.tmp
        self.roots = self.paths.roots
        self.locks = self.paths.locks
        marker = self.paths.marker
        if marker.is_file():
            try:
                formats.load_json("envgen-store", marker.read_bytes(), str(self.root))
            except NewerFormatError:
                raise
            except FormatError:
                raise StoreError(f"{marker}: not an envgen store marker",
                                 hint="point --store at an envgen store or an empty directory") from None
        elif create:
            if self.root.exists() and not self.root.is_dir():
                raise EnvgenError(f"{self.root}: exists and is not a directory", hint="choose another --store")
            if self.root.is_dir() and any(self.root.iterdir()) and not self.objects.is_dir():
                raise EnvgenError(f"{self.root}: not empty and not an envgen store",
                                  hint="point --store at an envgen store or an empty directory")
        if create:
            for d in (self.objects, self.tmp, self.roots, self.locks):
                d.mkdir(parents=True, exist_ok=True)
            if not marker.is_file():
                atomic_write(marker, canonical_json(formats.header("envgen-store")) + b"\n")

    # ------------------------------------------------------------------ objects

    def path_of(self, sha: str) -> Path:
        if not is_sha256(sha):
            raise ValueError(f"not a sha256 hex digest: {sha!r}")
        return self.objects / sha

    def has(self, sha: str) -> bool:
        return self.path_of(sha).is_file()

    def size_of(self, sha: str) -> int:
        return self.path_of(sha).stat().st_size

    def read_verified(self, sha: str, name: str) -> bytes:
        """An object's bytes, checked against its name; a missing or corrupt object is a one-line error."""
        self._present(sha, name)
        data = self.path_of(sha).read_bytes()
        import hashlib

        self._intact(sha, hashlib.sha256(data).hexdigest(), name)
        return data

    def verified(self, sha: str, name: str) -> Path:
        """An object's path, once its bytes are checked against its name (read in chunks: an object
        may be gigabytes); a missing or corrupt object is a one-line error."""
        from ..fsutil import file_sha256

        self._present(sha, name)
        self._intact(sha, file_sha256(self.path_of(sha)), name)
        return self.path_of(sha)

    def _present(self, sha: str, name: str) -> None:
        if not self.has(sha):
            raise EnvgenError(f"store object missing: {name} ({sha[:16]}…)", hint="run `envgen snapshot SPEC`")

    @staticmethod
    def _intact(sha: str, actual: str, name: str) -> None:
        if actual != sha:
            raise EnvgenError(f"store object corrupted: {name} should hash to {sha[:16]}… but hashes to {actual[:16]}…",
                              hint="run `envgen store verify --repair`, then `envgen snapshot SPEC` again")

    def open(self, sha: str) -> BinaryIO:
        try:
            return open(self.path_of(sha), "rb")
        except FileNotFoundError:
            raise EnvgenError(f"object {sha} is not in the store {self.root}",
                              hint="run `envgen snapshot SPEC` or `envgen restore BUNDLE`") from None

    def writer(self, expected_sha: str | None = None, label: str = "object") -> ObjectWriter:
        return ObjectWriter(self, expected_sha, label)

    def _install(self, tmp: Path, sha: str) -> None:
        """Move a verified, fsynced temporary file into place (atomic rename)."""
        os.chmod(tmp, 0o444)
        dest = self.path_of(sha)
        if dest.is_file():
            tmp.unlink()  # another writer won the race; same bytes by construction
            return
        os.rename(tmp, dest)
        fsync_dir(self.objects)

    def add_bytes(self, data: bytes, expected_sha: str | None = None, label: str = "object") -> str:
        import hashlib

        sha = hashlib.sha256(data).hexdigest()
        if expected_sha is not None and sha != expected_sha:
            raise HashMismatch(label, expected_sha, sha)
        if self.has(sha):
            return sha
        with self.writer(sha, label) as w:
            w.write(data)
            return w.commit()

    def add_file(self, path: str | os.PathLike, expected_sha: str | None = None, label: str | None = None) -> str:
        """Copy a file into the store (hashing while copying); returns its sha256."""
        path = Path(path)
        if expected_sha is not None and self.has(expected_sha):
            return expected_sha
        with open(path, "rb") as src, self.writer(expected_sha, label or str(path)) as w:
            while True:
                buf = src.read(CHUNK)
                if not buf:
                    break
                w.write(buf)
            return w.commit()

    def adopt(self, tmp: Path, sha: str) -> None:
        """Install a file that already lies in ``tmp/`` and whose hash was checked by the caller."""
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._install(tmp, sha)

    def iter_objects(self) -> Iterator[str]:
        if not self.objects.is_dir():
            return
        for entry in os.scandir(self.objects):
            if entry.is_file(follow_symlinks=False) and is_sha256(entry.name):
                yield entry.name

    # ------------------------------------------------------------------ locks

    @contextmanager
    def _flock(self, name: str, mode: int):
        fd = os.open(self.locks / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def session(self, exclusive: bool = False):
        """Hold the store lock: shared for writers, exclusive for gc.

        A shared session starts by removing stale temporary files when no other
        process is using the store (every writer holds a shared session, so an
        exclusive lock means nothing in tmp/ is in flight).
        """
        fd = os.open(self.locks / "store.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if exclusive:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._clean_tmp()
            else:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    self._clean_tmp()
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                fcntl.flock(fd, fcntl.LOCK_SH)
            yield self
        finally:
            os.close(fd)

    @contextmanager
    def object_lock(self, sha: str):
        """One writer per object across processes."""
        if not is_sha256(sha):
            raise ValueError(sha)
        with self._flock(f"{sha}.lock", fcntl.LOCK_EX):
            yield

    def _clean_tmp(self) -> int:
        n = 0
        if not self.tmp.is_dir():
            return 0
        for entry in os.scandir(self.tmp):
            p = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                remove_tree(p)
            else:
                p.unlink(missing_ok=True)
            n += 1
        return n

    def staging_dir(self, prefix: str = "stage-") -> Path:
        import tempfile

        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.tmp))

    # ------------------------------------------------------------------ roots

    def root_path(self, name: str) -> Path:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", name):
            raise ValueError(f"bad root name {name!r}")
        return self.roots / f"{name}.json"

    def write_root(self, name: str, data: bytes) -> Path:
        return atomic_write(self.root_path(name), data, mode=0o444)

    def read_root(self, name: str) -> bytes | None:
        p = self.root_path(name)
        return p.read_bytes() if p.is_file() else None

    def remove_root(self, name: str) -> bool:
        p = self.root_path(name)
        if p.is_file():
            p.unlink()
            return True
        return False

    def list_roots(self) -> list[str]:
        if not self.roots.is_dir():
            return []
        return sorted(e.name[:-5] for e in os.scandir(self.roots)
                      if e.name.endswith(".json") and not e.name.startswith(".") and e.is_file())

    def referenced(self) -> set[str]:
        """Every object some root keeps alive.  Refuses roots it cannot read (gc must not guess)."""
        keep: set[str] = set()
        for name in self.list_roots():
            p = self.root_path(name)
            try:
                doc = formats.load_json("envgen-snapshot", p.read_bytes(), str(p))
                objs = doc["objects"]
            except NewerFormatError:
                raise
            except (FormatError, KeyError):
                raise StoreError(f"{p}: unreadable gc root", hint="remove it by hand if it is garbage") from None
            for o in objs:
                sha = o.get("sha256") if isinstance(o, dict) else None
                if is_sha256(sha):
                    keep.add(sha)
        return keep

    # ------------------------------------------------------------------ verify

    def verify(self, shas: Iterable[str] | None = None, progress: Callable[[int], None] | None = None,
               jobs: int | None = None, repair: bool = False) -> VerifyReport:
        """Rehash objects (all, or *shas*); report corrupt and missing ones.

        Reads in 4 MiB blocks into a reused buffer; hashlib releases the GIL on
        large updates, so threads hash several files at once.
        """
        import hashlib
        import threading
        from concurrent.futures import ThreadPoolExecutor

        report = VerifyReport()
        names = sorted(set(shas)) if shas is not None else sorted(self.iter_objects())
        todo = []
        for sha in names:
            if self.has(sha):
                todo.append(sha)
            else:
                report.missing.append(sha)
        lock = threading.Lock()
        local = threading.local()

        def check(sha: str) -> tuple[str, bool, int]:
            buf = getattr(local, "buf", None)
            if buf is None:
                buf = local.buf = bytearray(VERIFY_CHUNK)
            view = memoryview(buf)
            h = hashlib.sha256()
            n = 0
            with open(self.path_of(sha), "rb", buffering=0) as fh:
                while True:
                    k = fh.readinto(buf)
                    if not k:
                        break
                    h.update(view[:k])
                    n += k
                    if progress is not None:
                        with lock:
                            progress(k)
            return sha, h.hexdigest() == sha, n

        # one thread already hashes at ~1 GB/s; more only pay off with spare cores
        jobs = jobs or max(1, min(8, (os.cpu_count() or 2) // 2))
        if len(todo) <= 1:
            jobs = 1
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for sha, good, n in pool.map(check, todo):
                report.checked += 1
                report.bytes += n
                if not good:
                    report.corrupt.append(sha)
        if repair:
            for sha in report.corrupt:
                p = self.path_of(sha)
                os.chmod(p, 0o644)
                p.unlink()
        return report

    # ------------------------------------------------------------------ install units

    def units_in_use(self) -> set[str]:
        """Every install unit (``units/KEY``) that some built tree lists in its ``trees/KEY/meta.json``.

        A tree hard-links its units' files, so a unit is garbage exactly when no tree names it.  A tree
        whose meta.json cannot be read is refused (gc must not guess); a tree directory without one is
        not a published tree (trees are published whole) and keeps nothing.
        """
        keep: set[str] = set()
        if not self.paths.trees.is_dir():
            return keep
        for entry in sorted(os.scandir(self.paths.trees), key=lambda e: e.name):
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            meta = Path(entry.path) / "meta.json"
            try:
                data = meta.read_bytes()
            except FileNotFoundError:
                continue
            try:
                doc = formats.load_json("envgen-tree", data, str(meta))
                units = doc.get("units", [])
                if not isinstance(units, list):
                    raise FormatError(str(meta))
            except NewerFormatError:
                raise
            except FormatError:
                raise StoreError(f"{meta}: unreadable tree metadata, so gc cannot tell which install units "
                                 "it uses", hint="remove that tree by hand if it is garbage") from None
            keep.update(u for u in units if is_sha256(u))
        return keep

    def iter_units(self) -> Iterator[str]:
        if not self.paths.units.is_dir():
            return
        for entry in os.scandir(self.paths.units):
            if entry.is_dir(follow_symlinks=False) and is_sha256(entry.name):
                yield entry.name

    # ------------------------------------------------------------------ gc

    def gc(self, dry_run: bool = False) -> dict:
        """Remove the objects no root lists and the install units no tree lists."""
        with self.session(exclusive=True):
            used = self.units_in_use()
            units_removed = units_kept = units_freed = 0
            for key in sorted(self.iter_units()):
                if key in used:
                    units_kept += 1
                    continue
                unit = self.paths.unit(key)
                units_removed += 1
                for dirpath, _, filenames in os.walk(unit):
                    for name in filenames:
                        st = os.lstat(os.path.join(dirpath, name))
                        units_freed += st.st_size if st.st_nlink == 1 else 0  # else a tree still holds it
                if not dry_run:
                    remove_tree(unit)
            keep = self.referenced()
            removed = 0
            freed = 0
            kept = 0
            for sha in list(self.iter_objects()):
                if sha in keep:
                    kept += 1
                    continue
                p = self.path_of(sha)
                try:
                    size = p.stat().st_size
                except FileNotFoundError:
                    continue
                removed += 1
                freed += size
                if not dry_run:
                    p.unlink()
            if not dry_run:
                for entry in os.scandir(self.locks):
                    stem = entry.name[:-5] if entry.name.endswith(".lock") else ""
                    if is_sha256(stem) and not self.has(stem):
                        Path(entry.path).unlink(missing_ok=True)
                if removed:
                    fsync_dir(self.objects)
            return {"removed": removed, "freed_bytes": freed + units_freed, "kept": kept,
                    "roots": len(self.list_roots()), "units_removed": units_removed, "units_kept": units_kept,
                    "dry_run": dry_run}


def open_store(explicit: str | os.PathLike | None) -> Store:
    return Store(store_dir(explicit))
