"""SIF runtimes: ``sif`` (no Apptainer needed) and ``apptainer``.

``sif``
    Reads the SIF header and descriptors (refusing a corrupt one with a
    one-line error), checks the squashfs partition against the sha256 in its
    labels, unsquashes it once into the store (``sif-cache/<sha256>/rootfs``)
    and runs that tree under bubblewrap.  The target may be a ``.sif`` file.
``apptainer``
    ``apptainer exec --containall`` of the env's SIF where Apptainer (or
    SingularityCE) is installed; a clear error otherwise.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import proc
from ..errors import FormatError, RunError, ToolMissing
from ..fsutil import atomic_dir
from ..snapshot import Store
from ..ui import UI
from .base import Env, Launch, RunSpec
from .bwrap import RUNTIME as BWRAP
from .images import build_for_image, exports_dir


def is_sif(path: str) -> bool:
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(42)[32:42] == b"SIF_MAGIC\0"


def exported_sif(store: Store, meta, ui: UI) -> Path:
    from ..export import EXPORTERS

    path = exports_dir(store) / f"{meta.tree_digest}.sif"
    if not path.is_file():
        ui.info(f"envgen: exporting {meta.ref} as a SIF")
        EXPORTERS["sif"](meta, path)
    return path


def unsquash_partition(store: Store, sif: Path):
    """(rootfs dir, SifInfo, partition sha256) of *sif*, unsquashed once into the store."""
    from ..export.sif import partition_sha256, read_sif

    info = read_sif(sif)
    part = info.primary()
    sha = partition_sha256(info, part)
    want = info.labels().get("dev.envgen.partition-sha256")
    if want and want != sha:
        raise FormatError(f"{sif}: corrupt SIF: the squashfs partition's sha256 is {sha[:16]}…, "
                          f"its labels say {str(want)[:16]}…")
    rootfs = store.paths.sif_cache / sha / "rootfs"
    if rootfs.is_dir():
        return rootfs, info, sha
    exe = proc.which("unsquashfs", hint="apt-get install squashfs-tools")
    with atomic_dir(rootfs) as tmp:
        tmp.rmdir()  # unsquashfs makes the directory itself
        p = proc.run([exe, "-no-progress", "-no-xattrs", "-o", str(part.offset), "-d", str(tmp), str(sif)],
                     "unsquashfs", check=False)
        if p.returncode != 0:
            raise FormatError(f"{sif}: corrupt SIF: unsquashfs failed: {proc.tail(p.stderr or p.stdout, 1)}")
        for d in ("proc", "dev", "tmp", "sys"):
            (tmp / d).mkdir(exist_ok=True)
    return rootfs, info, sha


def sif_env(store: Store, sif: Path, runtime: str) -> Env:
    rootfs, info, sha = unsquash_partition(store, sif)
    labels = info.labels()
    return Env(rootfs=rootfs, runtime=runtime, builder=f"sif:{sha}",
               snapshot_id=str(labels.get("dev.envgen.snapshot-id", "")),
               tree_digest=str(labels.get("dev.envgen.tree-digest", "")), build_key=f"sif:{sha}",
               env_name=str(labels.get("dev.envgen.name", sif.stem)), image=str(sif))


class SifRuntime:
    """The SIF's squashfs partition, unsquashed, under bwrap."""

    name = "sif"

    def prepare(self, store: Store, target: str, ui: UI, variant: str | None = None) -> tuple[Env, RunSpec | None]:
        if target.endswith(".sif") or is_sif(target):
            if not Path(target).is_file():
                raise RunError(f"{target}: no such file")
            return sif_env(store, Path(target), self.name), None
        spec, lock, res, meta = build_for_image(store, target, ui, variant)
        env = sif_env(store, exported_sif(store, meta, ui), self.name)
        env.builder, env.build_key, env.env_name = res.builder, res.key, lock.name  # the tree it was made from
        return env, RunSpec.of(spec) if spec is not None else None

    def argv(self, env: Env, launch: Launch) -> list[str]:
        return BWRAP.argv(env, launch)


class ApptainerRuntime:
    name = "apptainer"

    def exe(self) -> str:
        exe = shutil.which("apptainer") or shutil.which("singularity")
        if exe is None:
            raise ToolMissing("apptainer is not installed on this machine (nor singularity)",
                              hint="use --runtime sif: envgen reads the SIF itself and runs it under bubblewrap")
        return exe

    def prepare(self, store: Store, target: str, ui: UI, variant: str | None = None) -> tuple[Env, RunSpec | None]:
        self.exe()
        if is_sif(target):
            return sif_env(store, Path(target), self.name), None  # the tree is needed to check the command exists
        spec, lock, res, meta = build_for_image(store, target, ui, variant)
        env = Env(rootfs=res.rootfs, runtime=self.name, builder=res.builder, snapshot_id=res.snapshot_id,
                  tree_digest=res.digest, build_key=res.key, env_name=lock.name,
                  image=str(exported_sif(store, meta, ui)))
        return env, RunSpec.of(spec) if spec is not None else None

    def argv(self, env: Env, launch: Launch) -> list[str]:
        argv = [self.exe(), "exec", "--containall", "--cleanenv", "--pwd", launch.workdir]
        if launch.gpu is not None:
            from ..gpu import APPTAINER_ARGS

            argv += APPTAINER_ARGS  # Apptainer binds the driver (nvliblist.conf) and the devices itself
        if not launch.network:
            argv += ["--net", "--network", "none"]
        for k, v in sorted(launch.env_vars.items()):
            argv += ["--env", f"{k}={v}"]
        for b in launch.binds:
            argv += ["--bind", f"{b.src}:{b.dst}:{'rw' if b.writable else 'ro'}"]
        assert env.image is not None
        return argv + [env.image, *launch.command]


RUNTIME = SifRuntime()
APPTAINER = ApptainerRuntime()
