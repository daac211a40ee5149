"""The runtimes: bwrap (default), nix, podman, sif, apptainer; see :mod:`.base` for the contract."""

from __future__ import annotations

from .base import RUNTIMES, Env, Launch, RunSpec, Runtime, get_runtime

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from ..snapshot import Store
    from ..ui import UI

__all__ = ["RUNTIMES", "Env", "Launch", "RunSpec", "Runtime", "get_runtime", "prepare"]


def prepare(store: Store, target: str, runtime: str = "bwrap",
            ui: UI | None = None, variant: str | None = None) -> tuple[Runtime, Env, RunSpec | None]:
    """The runtime named *runtime*, and the env of *target* ready for it (built if needed)."""
    rt = get_runtime(runtime)
    if ui is None:
        from ..ui import UI

        ui = UI(quiet=True)
    env, spec = rt.prepare(store, target, ui, variant)
    return rt, env, spec
