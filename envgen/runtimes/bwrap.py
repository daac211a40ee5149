"""Runtimes that run a tree directly under bubblewrap: ``bwrap`` (the embedded builder's tree) and ``nix``.

Both build (or find) the tree through the builder contract, then run it with
:class:`envgen.sandbox.Sandbox`: a tmpfs root holding the tree's entries
read-only, fresh /proc, /dev and /tmp, only the declared binds, no network
unless asked.

Start-up fast path: a run of a tree built before starts without re-reading
the spec and lock or re-packing the local projects when none of those files
changed (same size, mtime and inode, as make and git's index judge); the
answer of the last full check is kept in the store's run cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .. import formats
from ..errors import EnvgenError
from ..fsutil import atomic_write
from ..sandbox import Sandbox
from ..snapshot import Store
from ..ui import UI
from .base import Env, Launch, RunSpec


class TreeRuntime:
    """Run the tree that *builder* makes, under bwrap."""

    def __init__(self, name: str, builder: str, fast_path: bool):
        self.name = name
        self.builder = builder
        self.fast_path = fast_path

    def prepare(self, store: Store, target: str, ui: UI) -> tuple[Env, RunSpec | None]:
        if self.fast_path:
            hit = _fast_lookup(store, target, self.name)
            if hit is not None:
                return hit
        from ..builders import build_spec
        from ..lock import load_lock_for

        spec, lock = load_lock_for(target, ui)
        res = build_spec(store, lock, spec.path if spec else None, self.builder, note=ui.info)
        env = Env(rootfs=res.rootfs, runtime=self.name, builder=res.builder, snapshot_id=res.snapshot_id,
                  tree_digest=res.digest, build_key=res.key, env_name=lock.name)
        run_spec = RunSpec.of(spec) if spec is not None else None
        if self.fast_path:
            _fast_save(store, target, self.name, spec, lock, env, run_spec)
        return env, run_spec

    def argv(self, env: Env, launch: Launch) -> list[str]:
        return Sandbox(root=env.rootfs, network=launch.network, binds=launch.binds, env=launch.env_vars,
                       cwd=launch.workdir).argv(launch.command)


RUNTIME = TreeRuntime("bwrap", "embedded", fast_path=True)
NIX_RUNTIME = TreeRuntime("nix", "nix", fast_path=False)


# --------------------------------------------------------------------------- start-up fast path


def _fast_path(store: Store, target: str, runtime: str) -> Path:
    key = hashlib.sha256(f"{runtime}\0{os.path.abspath(target)}".encode()).hexdigest()[:32]
    return store.paths.run_cache / f"{key}.json"


def _fingerprint(files: list[str], local_dirs: list[str]) -> list | None:
    from ..snapshot import srcpack

    out = []
    try:
        for f in files:
            st = os.stat(f)
            out.append([f, st.st_size, st.st_mtime_ns, st.st_ino])
        for d in local_dirs:
            for rel in srcpack.list_files(d):
                st = os.stat(os.path.join(d, rel))
                out.append([os.path.join(d, rel), st.st_size, st.st_mtime_ns, st.st_ino])
    except (OSError, EnvgenError):
        return None
    return out


def _fast_save(store: Store, target: str, runtime: str, spec, lock, env: Env, run_spec: RunSpec | None) -> None:
    lock_path = os.path.abspath(lock.path)
    files = ([os.path.abspath(spec.path)] if spec is not None else []) + [lock_path]
    local_dirs = [os.path.normpath(os.path.join(os.path.dirname(lock_path), p.directory))
                  for p in lock.packages if p.is_local]
    fp = _fingerprint(files, local_dirs)
    if fp is None:
        return
    doc = {**formats.header("envgen-run-cache"), "files": files, "local_dirs": local_dirs, "fingerprint": fp,
           "env": {k: (str(v) if isinstance(v, Path) else v) for k, v in env.__dict__.items()},
           "spec": run_spec.__dict__ if run_spec is not None else None}
    try:
        atomic_write(_fast_path(store, target, runtime), json.dumps(doc, sort_keys=True))
    except OSError:
        pass


def _fast_lookup(store: Store, target: str, runtime: str) -> tuple[Env, RunSpec | None] | None:
    try:
        doc = json.loads(_fast_path(store, target, runtime).read_text())
    except (OSError, ValueError):
        return None
    if doc.get("kind") != "envgen-run-cache" or doc.get("format-version") != formats.current("envgen-run-cache"):
        return None
    e = dict(doc["env"])
    e["rootfs"] = Path(e["rootfs"])
    if not (e["rootfs"].parent / "meta.json").is_file() or not e["rootfs"].is_dir():
        return None
    if _fingerprint(doc["files"], doc["local_dirs"]) != doc["fingerprint"]:
        return None
    return Env(**e), (RunSpec(**doc["spec"]) if doc["spec"] else None)
