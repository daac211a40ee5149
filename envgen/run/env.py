"""Get the environment a run needs: build it if needed, and say what it is."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

from ..errors import EnvgenError
from ..snapshot.store import Store
from .execute import EnvRef

# A run of an env built before starts without re-reading the spec and lock or
# re-packing the local projects when none of those files changed (same size,
# mtime and inode, as make and git's index judge): the answer of the last full
# check is kept in STORE/cache/run/.
FAST_VERSION = 1

RUNTIMES = ("bwrap", "podman", "apptainer", "sif", "nix")


def acquire(store: Store, spec_arg: str, runtime: str = "bwrap", ui=None) -> tuple[EnvRef, object]:
    """Build (or find) the env of *spec_arg* for *runtime*; return (EnvRef, spec or None)."""
    if runtime not in RUNTIMES:
        raise EnvgenError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime == "nix":  # the Nix-built tree (same layout), run under bwrap like the embedded one
        from ..builders.nix import acquire_nix

        return acquire_nix(store, spec_arg, ui)
    if runtime != "bwrap":  # container runtimes: envgen/run/containers.py (they set env.launcher)
        from . import containers

        return getattr(containers, f"acquire_{runtime}")(store, spec_arg, ui)
    fast = _fast_lookup(store, spec_arg)
    if fast is not None:
        return fast
    from ..builders.embedded import build
    from ..lock import load_lock_for

    spec, lock = load_lock_for(spec_arg, ui)
    note = (lambda m: ui.info(m)) if ui is not None else (lambda m: None)
    res = build(store, lock, spec.path if spec else None, note=note)
    env = EnvRef(rootfs=res.rootfs, runtime=runtime, builder=res.builder, snapshot_id=res.snapshot_id,
                 tree_digest=res.digest, build_key=res.key, env_name=lock.name)
    _fast_save(store, spec_arg, spec, lock, env)
    return env, spec


def _fast_path(store: Store, spec_arg: str) -> Path:
    key = hashlib.sha256(os.path.abspath(spec_arg).encode()).hexdigest()[:32]
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


def _fast_save(store: Store, spec_arg: str, spec, lock, env: EnvRef) -> None:
    from ..fsutil import atomic_write

    lock_path = os.path.abspath(lock.path)
    files = [os.path.abspath(spec.path)] if spec is not None else []
    files.append(lock_path)
    local_dirs = [os.path.normpath(os.path.join(os.path.dirname(lock_path), p.directory))
                  for p in lock.packages if p.is_local]
    fp = _fingerprint(files, local_dirs)
    if fp is None:
        return
    view = None
    if spec is not None:
        view = {"path": str(spec.path), "command": spec.command, "run_env": spec.run_env, "workdir": spec.workdir,
                "nondeterministic_files": spec.nondeterministic_files,
                "nondeterministic_columns": spec.nondeterministic_columns, "slurm": spec.slurm}
    doc = {"version": FAST_VERSION, "files": files, "local_dirs": local_dirs, "fingerprint": fp,
           "env": {k: str(v) for k, v in env.__dict__.items() if k != "launcher"}, "spec": view}
    try:
        atomic_write(_fast_path(store, spec_arg), json.dumps(doc, sort_keys=True))
    except OSError:
        pass


def _fast_lookup(store: Store, spec_arg: str):
    try:
        doc = json.loads(_fast_path(store, spec_arg).read_text())
    except (OSError, ValueError):
        return None
    if doc.get("version") != FAST_VERSION:
        return None
    e = doc["env"]
    rootfs = Path(e["rootfs"])
    if not (rootfs.parent / "meta.json").is_file() or not rootfs.is_dir():
        return None
    if _fingerprint(doc["files"], doc["local_dirs"]) != doc["fingerprint"]:
        return None
    env = EnvRef(rootfs=rootfs, runtime=e["runtime"], builder=e["builder"], snapshot_id=e["snapshot_id"],
                 tree_digest=e["tree_digest"], build_key=e["build_key"], env_name=e["env_name"])
    spec = SimpleNamespace(**doc["spec"]) if doc["spec"] else None
    return env, spec


def nondeterministic_of(spec) -> dict:
    if spec is None:
        return {}
    return {"files": list(spec.nondeterministic_files), "columns": dict(spec.nondeterministic_columns)}


def spec_label(spec, spec_arg: str) -> str:
    return str(Path(spec.path)) if spec is not None else spec_arg
