"""Get the environment a run needs: build it if needed, and say what it is."""

from __future__ import annotations

from pathlib import Path

from ..errors import EnvgenError
from ..lock import load_lock_for
from ..store import Store
from .execute import EnvRef

RUNTIMES = ("bwrap", "podman", "apptainer", "sif", "nix")


def acquire(store: Store, spec_arg: str, runtime: str = "bwrap", ui=None) -> tuple[EnvRef, object]:
    """Build (or find) the env of *spec_arg* for *runtime*; return (EnvRef, spec or None)."""
    if runtime not in RUNTIMES:
        raise EnvgenError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime == "nix":  # the Nix-built tree (same layout), run under bwrap like the embedded one
        from ..build.nix import acquire_nix

        return acquire_nix(store, spec_arg, ui)
    if runtime != "bwrap":  # container runtimes: envgen/run/containers.py (they set env.launcher)
        from . import containers

        return getattr(containers, f"acquire_{runtime}")(store, spec_arg, ui)
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
