"""Export a built env tree as bit-for-bit reproducible images.

Formats: an OCI image layout (:mod:`.oci`), a docker-archive tar for
``podman load`` (:mod:`.dockerarchive`), an Apptainer SIF (:mod:`.sif`) and a
plain squashfs for enroot/pyxis (:mod:`.squashfs`).  Every byte derives from
the tree, the lock and the spec: no clock but the snapshot date, no
randomness, no host user.

:data:`EXPORTERS` maps each format name to an :class:`Exporter`, all called
the same way: ``EXPORTERS[fmt](meta, out, options) -> summary dict``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import proc
from ..clock import SnapshotDate, format_utc
from ..errors import EnvgenError
from ..layout import DEFAULT_PATH

MARKER = ".envgen-export"  # written inside an OCI layout dir we made; lets --force-less overwrite


@dataclass
class ImageMeta:
    """What an image says about itself, beyond the tree."""

    root: Path
    name: str
    snapshot_date: dt.datetime
    snapshot_id: str
    tree_digest: str
    command: list[str] = field(default_factory=list)
    run_env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    description: str = ""
    version: str = ""
    source: str | None = None
    revision: str | None = None
    local: frozenset = frozenset()  # canonical names of local project distributions
    sbom: bytes | None = None
    # SLSA provenance predicate (envgen.attest.provenance_predicate) of this export; each exporter adds the subject
    provenance: dict | None = None
    signers: list = field(default_factory=list)  # securesystemslib signers: DSSE envelopes of provenance and SBOM

    def provenance_statement(self, subjects: list[dict]) -> bytes | None:
        """The provenance Statement of this export, with *subjects*, as canonical JSON (None without a predicate)."""
        if self.provenance is None:
            return None
        from .. import attest

        return attest.to_bytes(attest.provenance(subjects, self.provenance))

    @property
    def epoch(self) -> int:
        return SnapshotDate.parse(self.snapshot_date).epoch

    @property
    def created(self) -> str:
        return format_utc(self.snapshot_date)

    @property
    def ref(self) -> str:
        """``envgen/<name>:<snapshot-short>`` (podman mangles bare tags)."""
        return f"envgen/{self.name}:{self.snapshot_id[:12]}"

    def env(self) -> list[str]:
        base = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "SOURCE_DATE_EPOCH": str(self.epoch)}
        base.update(self.run_env)
        return [f"{k}={v}" for k, v in sorted(base.items())]

    def labels(self) -> dict[str, str]:
        out = {
            "dev.envgen.name": self.name,
            "dev.envgen.snapshot-id": self.snapshot_id,
            "dev.envgen.tree-digest": self.tree_digest,
            "org.opencontainers.image.created": self.created,
            "org.opencontainers.image.title": self.name,
            "org.opencontainers.image.version": self.version,
        }
        if self.description:
            out["org.opencontainers.image.description"] = self.description
        if self.source:
            out["org.opencontainers.image.source"] = self.source
        if self.revision:
            out["org.opencontainers.image.revision"] = self.revision
        return out


def _git(cwd: Path, *args: str) -> str | None:
    try:
        # safe.directory: the same answer whoever runs it (git refuses a checkout owned by another user)
        p = proc.run(["git", "-c", "safe.directory=*", "-C", str(cwd), *args], f"git {args[0]}", check=False)
    except (EnvgenError, OSError):  # no git: no source label
        return None
    return p.stdout.strip() or None if p.returncode == 0 else None


def meta_for(spec, lock, res, revision: str | None = None) -> ImageMeta:
    """Image metadata of a built env (*res*: a BuildResult) from its spec (may be None) and lock."""
    from packaging.utils import canonicalize_name

    from .sbom import make_sbom

    local = [p for p in lock.packages if p.is_local]
    version = local[0].version if len(local) == 1 and local[0].version else lock.snapshot_date.strftime("%Y.%m.%d")
    source = None
    if spec is not None:
        # not HEAD by default: an unrelated commit would change the manifest digest (see --revision)
        source = _git(spec.dir, "config", "--get", "remote.origin.url")
    meta = ImageMeta(
        root=res.rootfs, name=lock.name, snapshot_date=lock.snapshot_date, snapshot_id=res.snapshot_id,
        tree_digest=res.digest, command=list(spec.command) if spec else [],
        run_env=dict(spec.run_env) if spec else {}, workdir=spec.workdir if spec else None,
        description=spec.description if spec else "", version=version, source=source, revision=revision,
        local=frozenset(canonicalize_name(p.name) for p in local),
    )
    meta.sbom = make_sbom(lock, res.digest, res.snapshot_id, lock.name, version)
    return meta


def check_output_path(out: Path, force: bool, kind: str) -> None:
    """Refuse to overwrite a path that is not an envgen output of the same kind, unless *force*."""
    if not out.exists() and not out.is_symlink():
        return
    if force:
        return
    if kind == "dir":
        if out.is_dir() and ((out / MARKER).is_file() or not any(out.iterdir())):
            return
    elif out.is_file() and _looks_like_ours(out):
        return
    raise EnvgenError(f"{out} exists and is not an envgen export", hint="pick another -o, or pass --force")


def _looks_like_ours(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head[0x20:0x2A] == b"SIF_MAGIC\0":
        return True
    if head[:4] == b"hsqs":
        return True
    # docker-archive: a tar whose first member is our manifest.json
    return head[:13] == b"manifest.json"


# --------------------------------------------------------------------------- the exporters


@dataclass(frozen=True)
class ExportOptions:
    """Settings of an export; each format reads the ones it has (OCI all, docker-archive *jobs*, SIF/sqsh none)."""

    compression: str = "gzip"  # OCI layer compression: gzip or zstd
    level: int | None = None  # compression level (gzip 6, zstd 3 by default)
    jobs: int = 2  # layers compressed in parallel


@dataclass(frozen=True)
class Exporter:
    """One image format: ``exporter(meta, out, options)`` writes it at *out* and returns a summary."""

    name: str
    output: str  # "dir" (a layout directory) or "file"
    write: Callable[[ImageMeta, Path, ExportOptions], dict]

    def __call__(self, meta: ImageMeta, out: str | Path, options: ExportOptions | None = None) -> dict:
        return self.write(meta, Path(out), options or ExportOptions())


def _oci(meta: ImageMeta, out: Path, options: ExportOptions) -> dict:
    from .oci import write_oci

    return write_oci(meta, out, options.compression, options.level, options.jobs)


def _docker_archive(meta: ImageMeta, out: Path, options: ExportOptions) -> dict:
    from .dockerarchive import write_docker_archive

    return write_docker_archive(meta, out, options.jobs)


def _sif(meta: ImageMeta, out: Path, options: ExportOptions) -> dict:
    from .sif import write_env_sif

    return write_env_sif(meta, out)


def _sqsh(meta: ImageMeta, out: Path, options: ExportOptions) -> dict:
    from .sif import write_env_sqsh

    return write_env_sqsh(meta, out)


EXPORTERS: dict[str, Exporter] = {e.name: e for e in (
    Exporter("oci", "dir", _oci),
    Exporter("docker-archive", "file", _docker_archive),
    Exporter("sif", "file", _sif),
    Exporter("sqsh", "file", _sqsh),
)}
FORMATS = tuple(EXPORTERS)
