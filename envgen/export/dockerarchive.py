"""docker-archive (``docker save`` format) for ``podman load``/``docker load``.

A tar of ``manifest.json`` (first), ``<config-hex>.json`` and uncompressed
``<diff-id-hex>/layer.tar`` files: the same layers and config as the OCI export.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from pathlib import Path

from ..fsutil import atomic_output, canonical_json
from ..tarfmt import entry
from . import ImageMeta
from .layers import NONE
from .oci import build_image


def write_docker_archive(meta: ImageMeta, out: Path, jobs: int = 2) -> dict:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # scratch for the layer tars
    try:
        img = build_image(meta, work / "layers", NONE, None, jobs)
        manifest = [{"Config": f"{img.config_digest}.json", "RepoTags": [meta.ref],
                     "Layers": [f"{b.diff_id}/layer.tar" for b in img.layers]}]
        data = canonical_json(manifest)
        t = meta.epoch
        with atomic_output(out) as fh, tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(entry("manifest.json", size=len(data), mtime=t), io.BytesIO(data))
            tar.addfile(entry(f"{img.config_digest}.json", size=len(img.config), mtime=t), io.BytesIO(img.config))
            seen = set()
            for b in sorted(img.layers, key=lambda b: b.diff_id):
                if b.diff_id in seen:
                    continue
                seen.add(b.diff_id)
                tar.addfile(entry(b.diff_id, mtime=t, type=tarfile.DIRTYPE, mode=0o755))
                with open(b.path, "rb") as lf:
                    tar.addfile(entry(f"{b.diff_id}/layer.tar", size=b.size, mtime=t), lf)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"format": "docker-archive", "path": str(out), "ref": meta.ref,
            "manifest_digest": f"sha256:{img.manifest_digest}", "config_digest": f"sha256:{img.config_digest}",
            "image_id": img.config_digest, "size": out.stat().st_size,
            "layers": [{"name": b.name, "diff_id": f"sha256:{b.diff_id}", "size": b.size} for b in img.layers]}
