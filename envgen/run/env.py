"""Get the environment a run needs: build it if needed, and say what it is."""

from __future__ import annotations

from pathlib import Path

from ..errors import EnvgenError
from ..lock import load_lock_for
from ..store import Store
from .execute import EnvRef

RUNTIMES = ("bwrap",)


def acquire(store: Store, spec_arg: str, runtime: str = "bwrap", ui=None) -> tuple[EnvRef, object]:
    """Build (or find) the env of *spec_arg* for *runtime*; return (EnvRef, spec or None)."""
    if runtime not in RUNTIMES:
        raise EnvgenError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    spec, lock = load_lock_for(spec_arg, ui)
    from ..build.embedded import build

    note = (lambda m: ui.info(m)) if ui is not None else (lambda m: None)
    res = build(store, lock, spec.path if spec else None, note=note)
    return EnvRef(rootfs=res.rootfs, runtime=runtime, builder=res.builder, snapshot_id=res.snapshot_id,
                  tree_digest=res.digest, build_key=res.key, env_name=lock.name), spec


def nondeterministic_of(spec) -> dict:
    if spec is None:
        return {}
    return {"files": list(spec.nondeterministic_files), "columns": dict(spec.nondeterministic_columns)}


def spec_label(spec, spec_arg: str) -> str:
    return str(Path(spec.path)) if spec is not None else spec_arg
