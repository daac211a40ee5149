"""Launch plans: what ``prepare`` works out for a target, kept so that the next run need not.

Finding the tree of a spec means reading the spec and the lock, packing and
hashing the local projects into a snapshot id and asking the builder for its
tree: about 0.2 s.  A plan (``STORE/cache/run/<key>.json``, one per runtime
and target path) keeps the answer (the env: tree path, identity, the spec's
``[run]`` table; in :mod:`marshal`'s format, which `envgen run` reads without
an import) with what it was concluded from, as ``lstat`` results:

* the spec and the lock;
* every file of every local project and what decides which files those are
  (:func:`envgen.snapshot.srcpack.watched_listing`: the directories looked
  into, ignore files, git's index and config, the ``.git`` above);
* the tree itself: ``trees/KEY/rootfs`` and ``meta.json`` (a rebuild or a gc
  replaces or removes them);
* the builder module (its ``VERSION`` is part of the build key) and envgen's
  version, and the environment variables that steer git or name its files.

A plan is used only if every one of those is unchanged (mode, inode, device,
size, mtime and ctime), so a run starts with a few dozen ``lstat`` calls, no
lock and no hashing.  It is written only when nothing changed while the tree
was found or built, and not at all while a source is *racy*: changed within
:data:`RACY_NS` of the check, where a second change in the same timestamp tick
could leave every field as it was (git's "racy clean" problem, met the same
way).  A plan is a cache: deleting it costs one slow start.
"""

from __future__ import annotations

import marshal
import os
import time

from .. import __version__, formats
from ..run.launch import RUN_CACHE_DIR

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from ..snapshot import Store
    from .base import Env, RunSpec

KIND = "envgen-run-cache"
RACY_NS = 2_000_000_000  # a source changed this recently may change again unseen (coarse timestamps)
# the environment that decides which files a local project's listing holds, and where git's files are
CONTEXT_VARS = ("HOME", "XDG_CONFIG_HOME")

Stat = list[int] | None


def _stat(path: str) -> Stat:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return [st.st_mode, st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _context() -> dict[str, str]:
    return {k: v for k, v in sorted(os.environ.items()) if k in CONTEXT_VARS or k.startswith("GIT_")}


def _builder_module(builder: str) -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "builders", f"{builder}.py")


def plan_path(root: str, runtime: str, target: str, variant: str | None = None) -> str:
    """``cache/run/<key>.json``.  The key need not be a cryptographic hash (a plan names its runtime,
    target and variant, and is used only for those): 64-bit FNV-1a, which needs no import at start-up."""
    h = 0xCBF29CE484222325
    # the default env's key is as it was before variants existed
    for byte in f"{runtime}\0{os.path.abspath(target)}{'' if variant is None else chr(0) + variant}".encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return os.path.join(root, RUN_CACHE_DIR, f"{h:016x}.marshal")


class Sources:
    """The files a target's env was concluded from, and their ``lstat`` at one moment."""

    def __init__(self, paths: list[str]):
        self.paths = paths
        self.taken_ns = time.time_ns()
        self.stats = [_stat(p) for p in paths]

    @classmethod
    def of(cls, spec, lock) -> Sources | None:
        """The spec, the lock and the local projects of *lock* (None if a project cannot be listed)."""
        from ..errors import EnvgenError
        from ..snapshot import srcpack

        lock_path = os.path.abspath(lock.path)
        paths = ([os.path.abspath(spec.path)] if spec is not None else []) + [lock_path]
        for p in lock.packages:
            if not p.is_local:
                continue
            d = os.path.normpath(os.path.join(os.path.dirname(lock_path), p.directory))
            try:
                listed = srcpack.watched_listing(d)
            except (OSError, EnvgenError):
                return None
            if listed is None:
                return None
            files, watch = listed
            paths += [os.path.join(d, f) for f in files] + watch
        return cls(sorted(set(paths)))

    def unchanged(self) -> bool:
        """Whether every source is as it was when taken, and none was racy then."""
        if [_stat(p) for p in self.paths] != self.stats:
            return False
        newest = max((max(s[4], s[5]) for s in self.stats if s is not None), default=0)
        return newest < self.taken_ns - RACY_NS


def save(store: Store, runtime: str, builder: str, target: str, env: Env, run_spec: RunSpec | None,
         sources: Sources, variant: str | None = None) -> bool:
    """Keep the plan of *target* if *sources* are still as they were before the env was found; say if kept."""
    if not sources.unchanged():
        return False
    rootfs = os.path.abspath(env.rootfs)
    root = os.path.abspath(store.root)
    rel = os.path.relpath(rootfs, root) if rootfs.startswith(root + os.sep) else rootfs
    doc = {
        **formats.header(KIND), "runtime": runtime, "target": os.path.abspath(target), "variant": variant,
        "envgen": __version__,
        "context": _context(), "builder": [_builder_module(builder), _stat(_builder_module(builder))],
        "tree": {"rootfs": rel, "stats": _tree_stats(rootfs)},
        "env": {**env.__dict__, "rootfs": rel},
        "spec": run_spec.__dict__ if run_spec is not None else None,
        "sources": [[p, s] for p, s in zip(sources.paths, sources.stats, strict=True)],
    }
    from ..fsutil import atomic_write

    try:
        atomic_write(plan_path(str(store.root), runtime, target, variant), marshal.dumps(doc))
    except OSError:
        return False
    return True


def _tree_stats(rootfs: str) -> list[Stat]:
    return [_stat(rootfs), _stat(os.path.join(os.path.dirname(rootfs), "meta.json"))]


def read(root: str, runtime: str, target: str, variant: str | None = None) -> dict | None:
    """The plan of *target* in the store at *root*, if it holds (its ``env`` with ``rootfs`` made absolute,
    and its ``spec``); else None (the caller works it out)."""
    try:
        with open(plan_path(root, runtime, target, variant), "rb") as fh:
            doc = marshal.loads(fh.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not isinstance(doc, dict) or doc.get("kind") != KIND or doc.get("format-version") != formats.current(KIND):
        return None
    if (doc["runtime"], doc["target"], doc.get("variant"), doc["envgen"]) != (
            runtime, os.path.abspath(target), variant, __version__):
        return None
    if doc["context"] != _context() or _stat(doc["builder"][0]) != doc["builder"][1]:
        return None
    rootfs = os.path.join(root, doc["tree"]["rootfs"])
    if doc["tree"]["stats"][0] is None or _tree_stats(rootfs) != doc["tree"]["stats"]:
        return None
    for path, st in doc["sources"]:
        if _stat(path) != st:
            return None
    doc["env"]["rootfs"] = rootfs
    return doc


def load(store: Store, runtime: str, target: str, variant: str | None = None) -> tuple[Env, RunSpec | None] | None:
    """The env of *target* from its plan, if the plan holds; else None (the caller works it out)."""
    doc = read(str(store.root), runtime, target, variant)
    if doc is None:
        return None
    from pathlib import Path

    from .base import Env, RunSpec

    env = Env(**{**doc["env"], "rootfs": Path(doc["env"]["rootfs"])})
    spec = RunSpec(**{**doc["spec"], "path": str(Path(target))}) if doc["spec"] is not None else None
    return env, spec
