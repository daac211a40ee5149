"""Container runtimes for ``envgen run --runtime podman|apptainer|sif``.

All of them go through :func:`envgen.run.execute.run_recorded`, so a run writes
the same provenance record whatever runs it (``runtime`` says which):

``podman``
    Loads the env's docker-archive (exported on demand) as ``envgen/NAME:SNAP12``
    unless an image of that name with the same tree digest label is there, then
    ``podman run`` it as the image's non-root user (1000:1000), ``--network
    none`` unless --network, with runc + cgroupfs + explicit ulimits (what works
    on hosts with hybrid cgroups).  Run as root, the container's uid 1000 is
    mapped to the host's root so writable binds stay writable, owned by the caller.
``apptainer``
    ``apptainer exec --containall`` of the env's SIF where Apptainer (or
    SingularityCE) is installed; a clear error otherwise.
``sif``
    No Apptainer needed: reads the SIF header and descriptors (refusing a
    corrupt one with a one-line error), checks the squashfs partition against
    the sha256 in its labels, unsquashes it once into the store
    (``sif-cache/<partition sha256>/rootfs``) and runs it under bubblewrap.
    SPEC may be a ``.sif`` file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import EnvgenError
from ..fsutil import remove_tree
from ..snapshot.store import Store
from ..layout import UID as IMAGE_UID
from .execute import EnvRef

PODMAN_BASE = ["--runtime", "/usr/sbin/runc", "--cgroup-manager", "cgroupfs"]
PODMAN_RUN_FLAGS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def is_sif(path: str) -> bool:
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(42)[32:42] == b"SIF_MAGIC\0"


def _build(store: Store, spec_arg: str, ui):
    from ..builders.embedded import build
    from ..export import meta_for
    from ..lock import load_lock_for

    spec, lock = load_lock_for(spec_arg, ui)
    note = (lambda m: ui.info(m)) if ui is not None else (lambda m: None)
    res = build(store, lock, spec.path if spec else None, note=note)
    return spec, lock, res, meta_for(spec, lock, res)


def _exports_dir(store: Store) -> Path:
    d = store.paths.exports
    d.mkdir(parents=True, exist_ok=True)
    return d


def _note(ui, msg: str) -> None:
    if ui is not None:
        ui.info(msg)


# --------------------------------------------------------------------------- podman


def podman_path() -> str:
    exe = shutil.which("podman")
    if exe is None:
        raise EnvgenError("podman is not installed", hint="apt-get install podman runc, or use --runtime bwrap")
    return exe


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([podman_path(), *PODMAN_BASE, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        msg = (p.stderr or p.stdout).strip().splitlines()
        raise EnvgenError(f"podman {args[0]} failed: {msg[-1] if msg else p.returncode}")
    return p


def podman_image_digest_label(ref: str) -> str | None:
    p = _podman("image", "inspect", "--format", '{{index .Labels "dev.envgen.tree-digest"}}', ref, check=False)
    return p.stdout.strip() or None if p.returncode == 0 else None


def ensure_podman_image(store: Store, meta, ui=None) -> str:
    """Load the env's image into podman unless it is there already; return its reference."""
    ref = meta.ref
    if podman_image_digest_label(ref) == meta.tree_digest:
        return ref
    from ..export import EXPORTERS

    archive = _exports_dir(store) / f"{meta.tree_digest}.docker.tar"
    _note(ui, f"envgen: exporting {ref} for podman")
    try:
        EXPORTERS["docker-archive"](meta, archive)
        _podman("load", "-q", "-i", str(archive))
    finally:
        archive.unlink(missing_ok=True)
    return ref


def podman_launcher(ref: str):
    def launch(command, env_vars, binds, network, workdir):
        argv = [podman_path(), *PODMAN_BASE, "run", "--rm", "-i", *PODMAN_RUN_FLAGS,
                "--user", f"{IMAGE_UID}:{IMAGE_UID}", "--workdir", workdir]
        if not network:
            argv += ["--network", "none"]
        if os.geteuid() == 0:
            # container uid/gid 1000 = host root, so writable binds are writable; the rest out of the way
            for flag in ("--uidmap", "--gidmap"):
                argv += [flag, f"0:1:{IMAGE_UID}", flag, f"{IMAGE_UID}:0:1",
                         flag, f"{IMAGE_UID + 1}:{IMAGE_UID + 1}:{65536 - IMAGE_UID - 1}"]
        for k, v in sorted(env_vars.items()):
            argv += ["--env", f"{k}={v}"]
        for b in binds:
            argv += ["--volume", f"{b.src}:{b.dst}:{'rw' if b.writable else 'ro'}"]
        return argv + ["--entrypoint", "[]", ref, *command]

    return launch


def acquire_podman(store: Store, spec_arg: str, ui=None):
    podman_path()
    spec, lock, res, meta = _build(store, spec_arg, ui)
    ref = ensure_podman_image(store, meta, ui)
    env = EnvRef(rootfs=res.rootfs, runtime="podman", builder=res.builder, snapshot_id=res.snapshot_id,
                 tree_digest=res.digest, build_key=res.key, env_name=lock.name)
    env.launcher = podman_launcher(ref)
    return env, spec


# --------------------------------------------------------------------------- apptainer


def apptainer_path() -> str | None:
    return shutil.which("apptainer") or shutil.which("singularity")


def acquire_apptainer(store: Store, spec_arg: str, ui=None):
    exe = apptainer_path()
    if exe is None:
        raise EnvgenError("apptainer is not installed on this machine (nor singularity)",
                          hint="use --runtime sif: envgen reads the SIF itself and runs it under bubblewrap")
    if is_sif(spec_arg):
        sif, spec = Path(spec_arg), None
        env = _sif_envref(store, sif, "apptainer")  # the tree is needed to check the command exists
    else:
        spec, lock, res, meta = _build(store, spec_arg, ui)
        sif = _exported_sif(store, meta, ui)
        env = EnvRef(rootfs=res.rootfs, runtime="apptainer", builder=res.builder, snapshot_id=res.snapshot_id,
                     tree_digest=res.digest, build_key=res.key, env_name=lock.name)

    def launch(command, env_vars, binds, network, workdir):
        argv = [exe, "exec", "--containall", "--cleanenv", "--pwd", workdir]
        if not network:
            argv += ["--net", "--network", "none"]
        for k, v in sorted(env_vars.items()):
            argv += ["--env", f"{k}={v}"]
        for b in binds:
            argv += ["--bind", f"{b.src}:{b.dst}:{'rw' if b.writable else 'ro'}"]
        return argv + [str(sif), *command]

    env.launcher = launch
    return env, spec


# --------------------------------------------------------------------------- sif (no apptainer)


def _exported_sif(store: Store, meta, ui=None) -> Path:
    from ..export import EXPORTERS

    path = _exports_dir(store) / f"{meta.tree_digest}.sif"
    if not path.is_file():
        _note(ui, f"envgen: exporting {meta.ref} as a SIF")
        EXPORTERS["sif"](meta, path)
    return path


def unsquash_partition(store: Store, sif: Path):
    """(rootfs dir, SifInfo, partition sha256) of *sif*, unsquashed once into the store."""
    from ..export.sif import partition_sha256, read_sif

    info = read_sif(sif)
    part = info.primary()
    labels = info.labels()
    sha = partition_sha256(info, part)
    want = labels.get("dev.envgen.partition-sha256")
    if want and want != sha:
        raise EnvgenError(f"{sif}: corrupt SIF: the squashfs partition's sha256 is {sha[:16]}…, "
                          f"its labels say {str(want)[:16]}…")
    cache = store.paths.sif_cache / sha
    rootfs = cache / "rootfs"
    if rootfs.is_dir():
        return rootfs, info, sha
    exe = shutil.which("unsquashfs")
    if exe is None:
        raise EnvgenError("unsquashfs is not installed", hint="apt-get install squashfs-tools")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / "rootfs.tmp"
    if tmp.exists():
        remove_tree(tmp)
    p = subprocess.run([exe, "-no-progress", "-no-xattrs", "-o", str(part.offset), "-d", str(tmp), str(sif)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        remove_tree(tmp)
        msg = (p.stderr or p.stdout).strip().splitlines()
        raise EnvgenError(f"{sif}: corrupt SIF: unsquashfs failed: {msg[-1] if msg else p.returncode}")
    for d in ("proc", "dev", "tmp", "sys"):
        (tmp / d).mkdir(exist_ok=True)
    os.replace(tmp, rootfs)
    return rootfs, info, sha


def _sif_envref(store: Store, sif: Path, runtime: str) -> EnvRef:
    rootfs, info, sha = unsquash_partition(store, sif)
    labels = info.labels()
    return EnvRef(rootfs=rootfs, runtime=runtime, builder=f"sif:{sha}",
                  snapshot_id=str(labels.get("dev.envgen.snapshot-id", "")),
                  tree_digest=str(labels.get("dev.envgen.tree-digest", "")), build_key=f"sif:{sha}",
                  env_name=str(labels.get("dev.envgen.name", sif.stem)))


def acquire_sif(store: Store, spec_arg: str, ui=None):
    if spec_arg.endswith(".sif") or is_sif(spec_arg):
        if not Path(spec_arg).is_file():
            raise EnvgenError(f"{spec_arg}: no such file")
        return _sif_envref(store, Path(spec_arg), "sif"), None
    spec, lock, res, meta = _build(store, spec_arg, ui)
    sif = _exported_sif(store, meta, ui)
    env = _sif_envref(store, sif, "sif")
    env.builder, env.build_key, env.env_name = res.builder, res.key, lock.name  # the tree it was made from
    return env, spec
