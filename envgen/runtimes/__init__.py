"""The runtimes: bwrap (default), nix, podman, sif, apptainer; see :mod:`.base` for the contract."""

from __future__ import annotations

from ..snapshot import Store
from ..ui import UI
from .base import RUNTIMES, Env, Launch, RunSpec, Runtime, get_runtime

__all__ = ["RUNTIMES", "Env", "Launch", "RunSpec", "Runtime", "get_runtime", "prepare"]


def prepare(store: Store, target: str, runtime: str = "bwrap",
            ui: UI | None = None) -> tuple[Runtime, Env, RunSpec | None]:
    """The runtime named *runtime*, and the env of *target* ready for it (built if needed)."""
    rt = get_runtime(runtime)
    env, spec = rt.prepare(store, target, ui if ui is not None else UI(quiet=True))
    return rt, env, spec
