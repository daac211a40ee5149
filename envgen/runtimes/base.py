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
from pathlib import Path

from ..errors import RunError
from ..values import Value

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Protocol

    from ..gpu import GpuHost
    from ..sandbox import Bind
    from ..snapshot import Store
    from ..ui import UI
else:
    Protocol = object


class Env(Value):
    """What a runtime runs in: a tree on disk (always: commands are looked up in it) and its identity.

    ``image``: what the runtime executes, when not the tree (an image ref or a SIF path).
    """

    def __init__(self, rootfs: Path, runtime: str, builder: str, snapshot_id: str, tree_digest: str, build_key: str,
                 env_name: str, image: str | None = None):
        self.rootfs = rootfs
        self.runtime = runtime
        self.builder = builder
        self.snapshot_id = snapshot_id
        self.tree_digest = tree_digest
        self.build_key = build_key
        self.env_name = env_name
        self.image = image


class RunSpec(Value):
    """The parts of a spec a run reads (from the spec, or from the launch plan without reading it)."""

    def __init__(self, path: str, command: list[str] | None = None, run_env: dict[str, str] | None = None,
                 workdir: str | None = None, nondeterministic_files: list[str] | None = None,
                 nondeterministic_columns: dict[str, list[str]] | None = None, slurm: dict[str, str] | None = None):
        self.path = path
        self.command: list[str] = command if command is not None else []
        self.run_env: dict[str, str] = run_env if run_env is not None else {}
        self.workdir = workdir
        self.nondeterministic_files: list[str] = nondeterministic_files if nondeterministic_files is not None else []
        self.nondeterministic_columns: dict[str, list[str]] = (nondeterministic_columns
                                                               if nondeterministic_columns is not None else {})
        self.slurm: dict[str, str] = slurm if slurm is not None else {}

    @classmethod
    def of(cls, spec) -> RunSpec:
        return cls(path=str(spec.path), command=list(spec.command), run_env=dict(spec.run_env), workdir=spec.workdir,
                   nondeterministic_files=list(spec.nondeterministic_files),
                   nondeterministic_columns={k: list(v) for k, v in spec.nondeterministic_columns.items()},
                   slurm=dict(spec.slurm))

    @property
    def nondeterministic(self) -> dict:
        return {"files": list(self.nondeterministic_files), "columns": dict(self.nondeterministic_columns)}


class Launch(Value):
    """One command to start inside an env."""

    def __init__(self, command: list[str], env_vars: dict[str, str], binds: list[Bind], network: bool = False,
                 workdir: str = "/", gpu: GpuHost | None = None):
        self.command = command
        self.env_vars = env_vars
        self.binds = binds
        self.network = network
        self.workdir = workdir
        self.gpu = gpu  # the host's NVIDIA driver, found by envgen.gpu.discover (None: no GPU)


class Runtime(Protocol):
    name: str

    def prepare(self, store: Store, target: str, ui: UI, variant: str | None = None) -> tuple[Env, RunSpec | None]:
        """Build or find the env of *target* (a spec, a lock, or what the runtime accepts, e.g. a .sif);
        *variant*: the spec's ``[variants.NAME]`` env."""
        ...

    def argv(self, env: Env, launch: Launch) -> list[str]:
        """The command line that runs *launch* in *env* (with the host's GPUs when ``launch.gpu``)."""
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
