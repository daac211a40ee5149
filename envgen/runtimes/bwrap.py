"""Runtimes that run a tree directly under bubblewrap: ``bwrap`` (the embedded builder's tree) and ``nix``.

Both build (or find) the tree through the builder contract, then run it with
:class:`envgen.sandbox.Sandbox`: a tmpfs root holding the tree's entries
read-only, fresh /proc, /dev and /tmp, only the declared binds, no network
unless asked.

Start-up: a run of a tree found before starts from its launch plan
(:mod:`.plan`) without re-reading the spec and lock or re-packing the local
projects, when none of the files the plan was concluded from changed.
"""

from __future__ import annotations

from ..sandbox import Sandbox
from . import plan
from .base import Env, Launch, RunSpec

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from ..snapshot import Store
    from ..ui import UI


class TreeRuntime:
    """Run the tree that *builder* makes, under bwrap."""

    def __init__(self, name: str, builder: str, fast_path: bool):
        self.name = name
        self.builder = builder
        self.fast_path = fast_path

    def prepare(self, store: Store, target: str, ui: UI, variant: str | None = None) -> tuple[Env, RunSpec | None]:
        if self.fast_path:
            hit = plan.load(store, self.name, target, variant)
            if hit is not None:
                return hit
        from ..builders import build_spec
        from ..lock import load_lock_for

        spec, lock = load_lock_for(target, ui, variant)
        # the sources' state before the build: the plan is kept only if it still holds after
        sources = plan.Sources.of(spec, lock) if self.fast_path else None
        res = build_spec(store, lock, spec.path if spec else None, self.builder, note=ui.info)
        env = Env(rootfs=res.rootfs, runtime=self.name, builder=res.builder, snapshot_id=res.snapshot_id,
                  tree_digest=res.digest, build_key=res.key, env_name=lock.name)
        run_spec = RunSpec.of(spec) if spec is not None else None
        # a lock older than its spec is warned about on every run: no plan then
        if sources is not None and (spec is None or lock.spec_sha256 == spec.sha256):
            plan.save(store, self.name, self.builder, target, env, run_spec, sources, variant)
        return env, run_spec

    def argv(self, env: Env, launch: Launch) -> list[str]:
        env_vars, extra = launch.env_vars, []
        if launch.gpu is not None:  # only --gpu imports the GPU module
            from .. import gpu
            from ..layout import DEFAULT_PATH

            env_vars, extra = gpu.sandbox_env(env_vars, DEFAULT_PATH), gpu.bwrap_args(launch.gpu)
        return Sandbox(root=env.rootfs, network=launch.network, binds=launch.binds, env=env_vars,
                       cwd=launch.workdir, extra=extra).argv(launch.command)


RUNTIME = TreeRuntime("bwrap", "embedded", fast_path=True)
NIX_RUNTIME = TreeRuntime("nix", "nix", fast_path=False)
