"""docker-archive (``docker save`` format) for ``podman load``/``docker load``.

A tar of ``manifest.json`` (first), ``<config-hex>.json`` and uncompressed
``<diff-id-hex>/layer.tar`` files: the same layers and config as the OCI export.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from ..fsutil import canonical_json
from . import ImageMeta
from .layers import NONE
from .oci import build_image


def _member(name: str, size: int, epoch: int, mode: int = 0o644, kind=tarfile.REGTYPE) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = size
    ti.mode = mode
    ti.mtime = epoch
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def write_docker_archive(meta: ImageMeta, out: Path, jobs: int = 2) -> dict:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        img = build_image(meta, work / "layers", NONE, None, jobs)
        manifest = [{"Config": f"{img.config_digest}.json", "RepoTags": [meta.ref],
                     "Layers": [f"{b.diff_id}/layer.tar" for b in img.layers]}]
        data = canonical_json(manifest)
        tmp = work / "archive.tar"
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_member("manifest.json", len(data), meta.epoch), io.BytesIO(data))
            tar.addfile(_member(f"{img.config_digest}.json", len(img.config), meta.epoch), io.BytesIO(img.config))
            seen = set()
            for b in sorted(img.layers, key=lambda b: b.diff_id):
                if b.diff_id in seen:
                    continue
                seen.add(b.diff_id)
                tar.addfile(_member(b.diff_id, 0, meta.epoch, 0o755, tarfile.DIRTYPE))
                with open(b.path, "rb") as fh:
                    tar.addfile(_member(f"{b.diff_id}/layer.tar", b.size, meta.epoch), fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"format": "docker-archive", "path": str(out), "ref": meta.ref,
            "manifest_digest": f"sha256:{img.manifest_digest}", "config_digest": f"sha256:{img.config_digest}",
            "image_id": img.config_digest, "size": out.stat().st_size,
            "layers": [{"name": b.name, "diff_id": f"sha256:{b.diff_id}", "size": b.size} for b in img.layers]}
