"""Snapshot: put every artifact a lock names into the store, and name the set.

The **snapshot manifest** (canonical JSON, written to ``roots/<id>.json``)::

    {"format-version": 1, "kind": "envgen-snapshot", "name": "abide",
     "snapshot-date": "2025-05-08T00:00:00Z",
     "objects": [{"role": "wheel", "name": "numpy-...whl", "sha256": "...", "size": 123}, ...]}

Objects are sorted by (role, name, sha256).  Roles: ``wheel``, ``sdist``,
``build-wheel``, ``build-sdist``, ``deb``, ``build-deb``, ``local-source``
(a deterministic tar, see :mod:`envgen.srcpack`), ``vcs-source`` (a git
commit's pack, the same kind of tar, see :mod:`.vcs`), ``lock`` and ``spec``.
The last three also carry ``path``: where the file or directory lies relative
to the *layout root*, the deepest directory holding the lock and every local
project (for specs/abide.toml with ../pipelines/abide that is the repository
root: ``specs/abide.toml``, ``pipelines/abide``).

The **snapshot id** is the sha256 of the canonical manifest bytes, so the same
lock (and the same local sources) gives the same id on any machine.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__, formats
from ..clock import format_utc
from ..errors import EnvgenError, FetchError, FormatError, LockError, NoSpace, StoreError
from ..fsutil import canonical_json
from ..lock import pylock
from . import srcpack, vcs
from .store import HashMismatch, Store, is_sha256

KIND = "envgen-snapshot"
USER_AGENT = f"envgen/{__version__} (+snapshot)"
READ_CHUNK = 1 << 20
FETCH_HINT = "check the network or proxy settings (https_proxy); re-run to resume"


@dataclass
class Fetch:
    role: str
    name: str
    sha256: str
    size: int | None
    urls: list[str]
    package: str = ""  # the PyPI project or Debian package it belongs to


@dataclass
class LocalItem:
    role: str  # local-source | lock | spec
    name: str
    path: str  # relative to the layout root (POSIX)
    source: Path  # on this machine


@dataclass
class GitItem:
    """A git commit's source pack (role ``vcs-source``): in the store, or fetched and packed again."""

    name: str  # the project
    source: vcs.GitSource
    sha256: str
    size: int | None


@dataclass
class Plan:
    name: str
    snapshot_date: str
    epoch: int
    fetches: list[Fetch]
    locals: list[LocalItem]
    lock: pylock.Lock
    gits: list[GitItem] = field(default_factory=list)


@dataclass
class SnapshotResult:
    id: str
    manifest: dict
    fetched: list[str] = field(default_factory=list)
    fetched_bytes: int = 0
    present: int = 0
    present_bytes: int = 0
    local_added: int = 0
    root: Path | None = None


# --------------------------------------------------------------------------- plan


def _layout_root(lock_dir: Path, local_dirs: list[Path]) -> Path:
    return Path(os.path.commonpath([str(lock_dir)] + [str(d) for d in local_dirs]))


def _rel(p: Path, base: Path) -> str:
    return Path(os.path.relpath(p, base)).as_posix()


def make_plan(lock: pylock.Lock, spec_path: Path | None = None, with_sdists: bool = False) -> Plan:
    if lock.path is None:
        raise EnvgenError("the lock has no path; load it from a file")
    lock_path = Path(os.path.abspath(lock.path))
    lock_dir = lock_path.parent
    fetches: list[Fetch] = []

    def add_pkg(p: pylock.PyPackage, wheel_role: str, sdist_role: str):
        for w in p.wheels:
            fetches.append(Fetch(wheel_role, w.filename, w.sha256, w.size, [w.url], p.name))
        # an sdist is fetched on request, and always when it is what gets built (no wheel)
        if p.sdist is not None and (with_sdists or p.from_sdist):
            s = p.sdist
            fetches.append(Fetch(sdist_role, s.filename, s.sha256, s.size, [s.url], p.name))

    local_dirs: list[tuple[str, Path]] = []
    gits: list[GitItem] = []
    for p in lock.packages:
        if p.directory is not None:  # p.is_local
            local_dirs.append((p.name, Path(os.path.normpath(lock_dir / p.directory))))
            continue
        if p.vcs is not None:
            gits.append(git_item(lock, p))
            continue
        add_pkg(p, "wheel", "sdist")
    for p in lock.build_tools:
        add_pkg(p, "build-wheel", "build-sdist")
    for dp in lock.debian.packages:
        role = "build-deb" if dp.role == "build" else "deb"
        urls = [dp.url] + ([dp.snapshot_url] if dp.snapshot_url and dp.snapshot_url != dp.url else [])
        fetches.append(Fetch(role, Path(dp.filename).name, dp.sha256, dp.size, urls, dp.name))
    for f in fetches:
        if not is_sha256(f.sha256):
            raise EnvgenError(f"{lock.path}: {f.name}: not a sha256 digest: {f.sha256!r}")

    if spec_path is None:
        cand = lock_dir / lock.spec
        spec_path = cand if cand.is_file() else None
    base = _layout_root(lock_dir, [d for _, d in local_dirs])
    locals_: list[LocalItem] = [LocalItem("lock", lock_path.name, _rel(lock_path, base), lock_path)]
    if spec_path is not None:
        sp = Path(os.path.abspath(spec_path))
        if sp.parent != lock_dir:
            base2 = _layout_root(lock_dir, [d for _, d in local_dirs] + [sp.parent])
            if base2 != base:
                raise EnvgenError(f"{sp}: the spec must lie next to its lock ({lock_dir})")
        locals_.append(LocalItem("spec", sp.name, _rel(sp, base), sp))
    for name, d in local_dirs:
        locals_.append(LocalItem("local-source", name, _rel(d, base), d))
    return Plan(lock.name, format_utc(lock.snapshot_date), lock.snapshot_date.epoch, fetches, locals_, lock, gits)


def git_item(lock: pylock.Lock, p: pylock.PyPackage) -> GitItem:
    """The source pack of *p*, a git package of *lock*, as its source build names it."""
    assert p.vcs is not None
    sb = lock.source_build(p.name)
    if sb is None or sb.reason != "vcs" or sb.source_sha256 is None:
        raise LockError(f"{lock.path}: {p.name} is a git package but no source build names its source pack",
                        hint="re-lock the spec (`envgen lock SPEC`)")
    src = vcs.GitSource(url=p.vcs.url, commit=p.vcs.commit_id,
                        requested_revision=p.vcs.requested_revision or p.vcs.commit_id,
                        subdirectory=p.vcs.subdirectory)
    return GitItem(p.name, src, sb.source_sha256, sb.source_size)


# --------------------------------------------------------------------------- fetching




class Interrupted(Exception):
    pass


_ACTIVE: dict[int, object] = {}
_ACTIVE_LOCK = threading.Lock()


@contextmanager
def _active(resp, stop):
    """Register a response so that an interrupt can unblock its read by shutting the socket down."""
    with _ACTIVE_LOCK:
        _ACTIVE[id(resp)] = resp
    try:
        if stop is not None and stop.is_set():
            raise Interrupted()
        yield
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.pop(id(resp), None)


def _abort_active() -> None:
    with _ACTIVE_LOCK:
        resps = list(_ACTIVE.values())
    for resp in resps:
        sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _download(store: Store, f: Fetch, progress: Callable[[int], None] | None, retries: int, timeout: float,
              stop: threading.Event | None = None) -> int:
    """Fetch one artifact into the store; returns bytes downloaded.  Tries each URL, retrying dropped connections."""
    import http.client
    import urllib.error
    import urllib.request

    attempts: dict[str, dict] = {}  # url -> its last failed attempt
    for url in f.urls:
        for attempt in range(retries + 1):
            got = 0
            try:
                req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
                with urllib.request.urlopen(req, timeout=timeout) as resp, \
                        store.writer(f.sha256, f"{f.name} ({url})") as w, _active(resp, stop):
                    while True:
                        if stop is not None and stop.is_set():
                            raise Interrupted()
                        buf = resp.read1(READ_CHUNK)
                        if not buf:
                            break
                        w.write(buf)
                        got += len(buf)
                        if progress is not None:
                            progress(len(buf))
                    if f.size is not None and w.size < f.size:
                        raise ConnectionError(f"connection closed after {w.size} of {f.size} bytes")
                    w.commit()
                    return w.size
            except HashMismatch:
                if progress is not None:
                    progress(-got)
                raise
            except urllib.error.HTTPError as exc:
                if progress is not None:
                    progress(-got)
                attempts[url] = {"url": url, "status": exc.code, "reason": f"HTTP {exc.code} {exc.reason}"}
                if exc.code < 500:
                    break  # 404 and friends: retrying the same URL will not help
            except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError, OSError) as exc:
                if progress is not None:
                    progress(-got)
                if isinstance(exc, OSError) and exc.errno in NoSpace.ERRNOS:
                    raise  # the store's disk is full: no other URL or retry helps (the CLI says so)
                if stop is not None and stop.is_set():
                    raise Interrupted() from None  # the socket was shut down by an interrupt: no retry
                reason = getattr(exc, "reason", None) or exc
                attempts[url] = {"url": url, "status": None, "reason": str(reason)}
            if attempt < retries:
                time.sleep(min(0.2 * (2 ** attempt), 2.0))
    tried = list(attempts.values())
    why = "; ".join(f"{a['url']}: {a['reason']}" for a in tried) or "no URL"
    raise FetchError(f"cannot fetch {f.name}: {why}", hint=FETCH_HINT,
                     artifacts=[{"name": f.name, "role": f.role, "package": f.package, "sha256": f.sha256,
                                 "attempts": tried}])


def _fetch_one(store: Store, f: Fetch, progress, retries: int, timeout: float,
               stop: threading.Event | None = None) -> tuple[str, int, bool]:
    """Returns (sha, bytes, downloaded?)."""
    if store.has(f.sha256):
        return f.sha256, store.size_of(f.sha256), False
    with store.object_lock(f.sha256):
        if store.has(f.sha256):  # another process fetched it while we waited
            return f.sha256, store.size_of(f.sha256), False
        if stop is not None and stop.is_set():
            raise Interrupted()
        n = _download(store, f, progress, retries, timeout, stop)
        return f.sha256, n, True


def fetch_object(store: Store, name: str, sha256: str, size: int | None, urls: list[str], *, retries: int = 2,
                 timeout: float = 60.0) -> Path:
    """One artifact into the store (verified, resumable, once across processes); its object path.

    The same download as :func:`snapshot`'s, for stages that need a single
    object before there is a snapshot (the lock's build-requirement step).
    """
    with store.session():
        _fetch_one(store, Fetch("object", name, sha256, size, list(urls)), None, retries, timeout)
    return store.path_of(sha256)


def _schedule(fetches: list[Fetch]) -> list[Fetch]:
    """Start order: round-robin over hosts, largest first within a host.

    Hosts differ a lot in throughput (deb.debian.org is often capped per
    client, PyPI's CDN is not), so every host gets slots from the start, and
    the biggest files, which bound the run, start early.
    """
    by_host: dict[str, list[Fetch]] = {}
    for f in sorted(fetches, key=lambda f: (-(f.size or 0), f.name)):
        by_host.setdefault(urllib.parse.urlsplit(f.urls[0]).netloc if f.urls else "", []).append(f)
    queues = [by_host[h] for h in sorted(by_host)]
    out: list[Fetch] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def snapshot(store: Store, lock: pylock.Lock, spec_path: Path | None = None, *, with_sdists: bool = False,
             offline: bool = False, jobs: int = 8, progress_factory=None, retries: int = 2, timeout: float = 60.0,
             note: Callable[[str], None] | None = None) -> SnapshotResult:
    """Fetch what the store lacks, pack local sources, write the root; return the id.

    With *offline*, nothing is downloaded: an object the store lacks is a
    :class:`StoreError` naming it (the builders' entry: they take the id).
    *progress_factory(total_bytes)* may return a context manager yielding
    ``advance(nbytes)``; it is used only when something must be downloaded.
    """
    plan = make_plan(lock, spec_path, with_sdists)
    res = SnapshotResult(id="", manifest={})
    with store.session():
        objects = _add_local_items(store, plan, res)  # cheap, and they fail early on a broken tree
        objects += _add_git_items(store, plan, res, offline, note)
        missing = _missing(store, plan)
        if missing and offline:
            names = (", ".join(f.name for f in missing[:3])
                     + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
            raise StoreError(f"{len(missing)} store objects missing: {names}", hint="run `envgen snapshot SPEC` first")
        sizes, fetched = _fetch_all(store, missing, jobs, progress_factory, retries, timeout, note,
                                    len({f.sha256 for f in plan.fetches}))
        objects += _fetched_objects(store, plan, sizes, fetched, res)
        res.manifest = {
            **formats.header(KIND),
            "name": plan.name,
            "snapshot-date": plan.snapshot_date,
            "objects": sorted(objects, key=lambda o: (o["role"], o["name"], o["sha256"], o.get("path", ""))),
        }
        data = canonical_json(res.manifest)
        res.id = hashlib.sha256(data).hexdigest()
        res.root = store.write_root(res.id, data) if store.read_root(res.id) != data else store.root_path(res.id)
    return res


def _add_local_items(store: Store, plan: Plan, res: SnapshotResult) -> list[dict]:
    """Pack the local projects, read the lock and spec, and add them as objects."""
    objects = []
    for it in plan.locals:
        data = srcpack.pack_tree_bytes(it.source, plan.epoch) if it.role == "local-source" else it.source.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if not store.has(sha):
            store.add_bytes(data, sha, it.name)
            res.local_added += 1
        objects.append({"role": it.role, "name": it.name, "path": it.path, "sha256": sha, "size": len(data)})
    return objects


def _add_git_items(store: Store, plan: Plan, res: SnapshotResult, offline: bool, note) -> list[dict]:
    """The git commits' source packs: from the store, else fetched and packed again (checked against the lock)."""
    objects = []
    for g in plan.gits:
        if not store.has(g.sha256):
            if offline:
                raise StoreError(f"the source pack of {g.name} ({g.source.describe()}) is not in the store",
                                 hint="run `envgen snapshot SPEC` first")
            if note:
                note(f"fetching {g.name} at {g.source.describe()}")
            with store.object_lock(g.sha256):
                if not store.has(g.sha256):
                    vcs.refetch(store, g.name, g.source, g.sha256)
                    res.fetched.append(f"{g.name} (git {g.source.commit[:12]})")
                    res.fetched_bytes += store.size_of(g.sha256)
        size = store.size_of(g.sha256)
        if g.size is not None and size != g.size:
            raise LockError(f"{g.name}: the lock says its source pack has {g.size} bytes, the object has {size}",
                            hint="the lock is inconsistent; re-lock")
        objects.append({"role": "vcs-source", "name": g.name, "sha256": g.sha256, "size": size})
    return objects


def _missing(store: Store, plan: Plan) -> list[Fetch]:
    """The artifacts the store lacks, once each (the same file may appear under two roles), in start order."""
    unique: dict[str, Fetch] = {}
    for f in plan.fetches:
        unique.setdefault(f.sha256, f)
    return _schedule([f for f in unique.values() if not store.has(f.sha256)])


def _fetch_all(store: Store, missing: list[Fetch], jobs: int, progress_factory, retries: int, timeout: float,
               note, n_unique: int) -> tuple[dict[str, int], set[str]]:
    """Download *missing* in parallel; return ({sha: size}, {sha downloaded})."""
    sizes: dict[str, int] = {}
    fetched: set[str] = set()
    if not missing:
        return sizes, fetched
    total = sum(f.size or 0 for f in missing)
    if note:
        note(f"fetching {len(missing)} of {n_unique} artifacts ({total / 1e6:.1f} MB)")
    stop = threading.Event()

    failed: list[FetchError] = []  # artifacts no URL served: the others still go on

    def run(advance):
        pool = ThreadPoolExecutor(max_workers=max(1, jobs))
        try:
            futs = {pool.submit(_fetch_one, store, f, advance, retries, timeout, stop): f for f in missing}
            for fut in as_completed(futs):
                try:
                    sha, n, downloaded = fut.result()
                except FetchError as exc:
                    failed.append(exc)
                    continue
                sizes[sha] = n
                if downloaded:
                    fetched.add(sha)
        except BaseException:
            stop.set()  # workers abort between chunks; their temporary files are removed
            _abort_active()  # and blocked reads return at once
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    if progress_factory is not None:
        with progress_factory(total) as advance:
            run(advance)
    else:
        run(None)
    if failed:
        raise _one_fetch_error(failed)
    return sizes, fetched


def _one_fetch_error(failed: list[FetchError]) -> FetchError:
    """One error naming every artifact that could not be fetched (sorted by name)."""
    if len(failed) == 1:
        return failed[0]
    failed = sorted(failed, key=lambda e: e.artifacts[0]["name"] if e.artifacts else "")
    arts = [a for e in failed for a in e.artifacts]
    names = ", ".join(a["name"] for a in arts[:3]) + (f" and {len(arts) - 3} more" if len(arts) > 3 else "")
    first = "; ".join(f"{t['url']}: {t['reason']}" for t in arts[0]["attempts"])
    return FetchError(f"cannot fetch {len(arts)} artifacts: {names} (first: {first})", hint=FETCH_HINT,
                      artifacts=arts)


def _fetched_objects(store: Store, plan: Plan, sizes: dict[str, int], fetched: set[str],
                     res: SnapshotResult) -> list[dict]:
    """Manifest entries of the plan's artifacts, checked against the lock's sizes; counts what was fetched."""
    objects = []
    fetched = set(fetched)
    for f in plan.fetches:
        size = sizes.get(f.sha256)
        if size is None:
            size = store.size_of(f.sha256)
        if f.size is not None and size != f.size:
            raise LockError(f"{f.name}: the lock says {f.size} bytes, the object has {size}",
                            hint="the lock is inconsistent; re-lock")
        objects.append({"role": f.role, "name": f.name, "sha256": f.sha256, "size": size})
        if f.sha256 in fetched:
            res.fetched.append(f.name)
            res.fetched_bytes += size
            fetched.discard(f.sha256)
        else:
            res.present += 1
            res.present_bytes += size
    return objects


# --------------------------------------------------------------------------- reading manifests


def local_sources(lock: pylock.Lock, manifest: dict) -> list[tuple[str, dict]]:
    """(project name, its local-source object) for each local project of *lock*, from a snapshot manifest."""
    objs = {(o["role"], o["name"]): o for o in manifest["objects"]}
    out = []
    for p in lock.packages:
        if p.is_local:
            o = objs.get(("local-source", p.name))
            if o is None:
                raise EnvgenError(f"the snapshot has no source for local project {p.name}",
                                  hint="run `envgen snapshot SPEC` again")
            out.append((p.name, o))
    return out



def parse_manifest(data: bytes, where: str) -> dict:
    doc = formats.load_json(KIND, data, where)
    objs = doc.get("objects")
    if not isinstance(objs, list) or not all(isinstance(o, dict) and is_sha256(o.get("sha256")) for o in objs):
        raise FormatError(f"{where}: snapshot manifest with a malformed object list")
    return doc


def load_root(store: Store, sid: str) -> dict:
    if not is_sha256(sid):
        raise EnvgenError(f"{sid!r} is not a snapshot id (64 hex digits)")
    data = store.read_root(sid)
    if data is None:
        raise EnvgenError(f"snapshot {sid} is not in the store {store.root}",
                          hint="run `envgen snapshot SPEC` or `envgen restore BUNDLE`")
    if hashlib.sha256(data).hexdigest() != sid:
        raise EnvgenError(f"{store.root_path(sid)}: the root's bytes do not match its id")
    return parse_manifest(data, str(store.root_path(sid)))
