"""``envgen run --runtime podman``: the env's OCI image under podman (runc, cgroupfs).

Loads the env's docker-archive (exported on demand) as ``envgen/NAME:SNAP12``
unless an image of that name with the same tree-digest label is there, then
runs it as the image's non-root user, ``--network none`` unless --network,
with runc + cgroupfs + explicit ulimits (what works on hosts with hybrid
cgroups).  Run as root, the container's uid 1000 is mapped to the host's root
so writable binds stay writable and owned by the caller.
"""

from __future__ import annotations

import os

from .. import proc
from ..layout import UID
from ..snapshot import Store
from ..ui import UI
from .base import Env, Launch, RunSpec
from .images import build_for_image, exports_dir

PODMAN_BASE = ["--runtime", "/usr/sbin/runc", "--cgroup-manager", "cgroupfs"]
PODMAN_RUN_FLAGS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
LABEL = "dev.envgen.tree-digest"


def podman_path() -> str:
    return proc.which("podman", hint="apt-get install podman runc, or use --runtime bwrap")


def podman(*args: str, check: bool = True):
    return proc.run([podman_path(), *PODMAN_BASE, *args], f"podman {args[0]}", check=check)


def image_digest_label(ref: str) -> str | None:
    p = podman("image", "inspect", "--format", f'{{{{index .Labels "{LABEL}"}}}}', ref, check=False)
    return (p.stdout.strip() or None) if p.returncode == 0 else None


def ensure_image(store: Store, meta, ui: UI) -> str:
    """Load the env's image into podman unless it is there already; return its reference."""
    if image_digest_label(meta.ref) == meta.tree_digest:
        return meta.ref
    from ..export import EXPORTERS

    archive = exports_dir(store) / f"{meta.tree_digest}.docker.tar"
    ui.info(f"envgen: exporting {meta.ref} for podman")
    try:
        EXPORTERS["docker-archive"](meta, archive)
        podman("load", "-q", "-i", str(archive))
    finally:
        archive.unlink(missing_ok=True)
    return meta.ref


class PodmanRuntime:
    name = "podman"

    def prepare(self, store: Store, target: str, ui: UI, variant: str | None = None) -> tuple[Env, RunSpec | None]:
        podman_path()
        spec, lock, res, meta = build_for_image(store, target, ui, variant)
        ref = ensure_image(store, meta, ui)
        env = Env(rootfs=res.rootfs, runtime=self.name, builder=res.builder, snapshot_id=res.snapshot_id,
                  tree_digest=res.digest, build_key=res.key, env_name=lock.name, image=ref)
        return env, RunSpec.of(spec) if spec is not None else None

    def argv(self, env: Env, launch: Launch) -> list[str]:
        argv = [podman_path(), *PODMAN_BASE, "run", "--rm", "-i", *PODMAN_RUN_FLAGS,
                "--user", f"{UID}:{UID}", "--workdir", launch.workdir]
        if not launch.network:
            argv += ["--network", "none"]
        if os.geteuid() == 0:
            # container uid/gid 1000 = host root, so writable binds are writable; the rest out of the way
            for flag in ("--uidmap", "--gidmap"):
                argv += [flag, f"0:1:{UID}", flag, f"{UID}:0:1", flag, f"{UID + 1}:{UID + 1}:{65536 - UID - 1}"]
        env_vars = launch.env_vars
        if launch.gpu is not None:
            from .. import gpu
            from ..layout import DEFAULT_PATH

            argv += gpu.podman_args(launch.gpu)
            env_vars = gpu.sandbox_env(env_vars, DEFAULT_PATH)
        for k, v in sorted(env_vars.items()):
            argv += ["--env", f"{k}={v}"]
        for b in launch.binds:
            argv += ["--volume", f"{b.src}:{b.dst}:{'rw' if b.writable else 'ro'}"]
        assert env.image is not None
        return argv + ["--entrypoint", "[]", env.image, *launch.command]


RUNTIME = PodmanRuntime()
