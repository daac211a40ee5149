"""The runtimes: bwrap (default), nix, podman, sif, apptainer; see :mod:`.base` for the contract.

:mod:`.base`'s names are loaded on first use: `envgen run` from a launch plan
(:mod:`envgen.run.launch`) reads :mod:`.plan` alone.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from ..snapshot import Store
    from ..ui import UI
    from .base import RUNTIMES, Env, Launch, RunSpec, Runtime, get_runtime

__all__ = ["RUNTIMES", "Env", "Launch", "RunSpec", "Runtime", "get_runtime", "prepare"]


def __getattr__(name: str):
    if name in __all__:
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def prepare(store: Store, target: str, runtime: str = "bwrap",
            ui: UI | None = None, variant: str | None = None) -> tuple[Runtime, Env, RunSpec | None]:
    """The runtime named *runtime*, and the env of *target* ready for it (built if needed)."""
    from .base import get_runtime

    rt = get_runtime(runtime)
    if ui is None:
        from ..ui import UI

        ui = UI(quiet=True)
    env, spec = rt.prepare(store, target, ui, variant)
    return rt, env, spec
