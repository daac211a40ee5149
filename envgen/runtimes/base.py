"""The runtime contract: find or build an env, then give the command line that runs in it.

Every runtime (bwrap, nix, podman, sif, apptainer) implements :class:`Runtime`
and is reached through :func:`get_runtime`.  :meth:`Runtime.prepare` returns an
:class:`Env`, which says everything a run needs to know about the environment
(including what the runtime executes: a tree, an image reference or a SIF
file); :meth:`Runtime.argv` turns a :class:`Launch` into the argv to exec.
Recording a run (:mod:`envgen.run.execute`) is the same for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..errors import RunError
from ..sandbox import Bind
from ..snapshot import Store
from ..ui import UI


@dataclass
class Env:
    """What a runtime runs in: a tree on disk (always: commands are looked up in it) and its identity."""

    rootfs: Path
    runtime: str
    builder: str
    snapshot_id: str
    tree_digest: str
    build_key: str
    env_name: str
    image: str | None = None  # what the runtime executes, when not the tree: an image ref or a SIF path


@dataclass
class RunSpec:
    """The parts of a spec a run reads (from the spec, or from the start-up cache without reading it)."""

    path: str
    command: list[str] = field(default_factory=list)
    run_env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    nondeterministic_files: list[str] = field(default_factory=list)
    nondeterministic_columns: dict[str, list[str]] = field(default_factory=dict)
    slurm: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, spec) -> RunSpec:
        return cls(path=str(spec.path), command=list(spec.command), run_env=dict(spec.run_env), workdir=spec.workdir,
                   nondeterministic_files=list(spec.nondeterministic_files),
                   nondeterministic_columns={k: list(v) for k, v in spec.nondeterministic_columns.items()},
                   slurm=dict(spec.slurm))

    @property
    def nondeterministic(self) -> dict:
        return {"files": list(self.nondeterministic_files), "columns": dict(self.nondeterministic_columns)}


@dataclass
class Launch:
    """One command to start inside an env."""

    command: list[str]
    env_vars: dict[str, str]
    binds: list[Bind]
    network: bool = False
    workdir: str = "/"


class Runtime(Protocol):
    name: str

    def prepare(self, store: Store, target: str, ui: UI) -> tuple[Env, RunSpec | None]:
        """Build or find the env of *target* (a spec, a lock, or what the runtime accepts, e.g. a .sif)."""
        ...

    def argv(self, env: Env, launch: Launch) -> list[str]:
        """The command line that runs *launch* in *env*."""
        ...


def _bwrap() -> Runtime:
    from .bwrap import RUNTIME

    return RUNTIME


def _nix() -> Runtime:
    from .bwrap import NIX_RUNTIME

    return NIX_RUNTIME


def _podman() -> Runtime:
    from .podman import RUNTIME

    return RUNTIME


def _sif() -> Runtime:
    from .sif import RUNTIME

    return RUNTIME


def _apptainer() -> Runtime:
    from .sif import APPTAINER

    return APPTAINER


# name -> loader (imported on first use: `envgen run` loads only the runtime it uses)
RUNTIMES: dict[str, Callable[[], Runtime]] = {
    "bwrap": _bwrap, "nix": _nix, "podman": _podman, "sif": _sif, "apptainer": _apptainer,
}


def get_runtime(name: str) -> Runtime:
    if name not in RUNTIMES:
        raise RunError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
    return RUNTIMES[name]()
