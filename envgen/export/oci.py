"""OCI image layout writer: ``oci-layout``, ``index.json``, ``blobs/sha256/…``."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..fsutil import atomic_dir, canonical_json
from ..layout import IMAGE_USER
from . import MARKER, ImageMeta
from .layers import GZIP, Extra, LayerBlob, plan_layers, write_layer_blob

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
SBOM_PATH = ".envgen/sbom.cdx.json"
LAYER_ANNOTATION = "dev.envgen.layer"


@dataclass
class Image:
    layers: list[LayerBlob]
    config: bytes
    config_digest: str
    manifest: bytes
    manifest_digest: str


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def image_layers(meta: ImageMeta):
    layers = plan_layers(meta.root, local=meta.local)
    if meta.sbom is not None:
        layers[-1].extras.append(Extra(SBOM_PATH, meta.sbom, 0o644))
    return layers


def write_layers(meta: ImageMeta, blob_dir: Path, compression: str = GZIP, level: int | None = None,
                 jobs: int = 2, layers=None) -> list[LayerBlob]:
    """Write every layer into *blob_dir*, named by digest; return them in image order."""
    layers = image_layers(meta) if layers is None else layers
    blob_dir.mkdir(parents=True, exist_ok=True)

    def one(i_layer):
        i, layer = i_layer
        tmp = blob_dir / f".layer-{i}.tmp"
        blob = write_layer_blob(meta.root, layer, tmp, meta.epoch, compression, level)
        final = blob_dir / blob.digest
        os.replace(tmp, final)
        blob.path = final
        return blob

    # the biggest layers first, so two workers finish together
    order = sorted(enumerate(layers), key=lambda il: -len(il[1].paths))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        done = dict(zip([i for i, _ in order], pool.map(one, order), strict=True))
    return [done[i] for i in range(len(layers))]


def make_config(meta: ImageMeta, layers: list[LayerBlob]) -> bytes:
    cfg: dict = {
        "User": IMAGE_USER,
        "Env": meta.env(),
        "WorkingDir": meta.workdir or "/",
        "Labels": meta.labels(),
    }
    if meta.command:
        cfg["Cmd"] = list(meta.command)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": meta.created,
        "author": "envgen",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{b.diff_id}" for b in layers]},
        "history": [{"created": meta.created, "created_by": f"envgen export: layer {b.name}",
                     "comment": f"envgen layer {b.name}"} for b in layers],
    }
    return canonical_json(config)


def make_manifest(meta: ImageMeta, layers: list[LayerBlob], config: bytes) -> bytes:
    annotations = {k: v for k, v in meta.labels().items() if k.startswith("org.opencontainers.image.")}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": f"sha256:{_sha(config)}", "size": len(config)},
        "layers": [{"mediaType": b.media_type, "digest": f"sha256:{b.digest}", "size": b.size,
                    "annotations": {LAYER_ANNOTATION: b.name}} for b in layers],
        "annotations": annotations,
    }
    return canonical_json(manifest)


def build_image(meta: ImageMeta, blob_dir: Path, compression: str = GZIP, level: int | None = None,
                jobs: int = 2) -> Image:
    layers = write_layers(meta, blob_dir, compression, level, jobs)
    config = make_config(meta, layers)
    manifest = make_manifest(meta, layers, config)
    return Image(layers, config, _sha(config), manifest, _sha(manifest))


def write_oci(meta: ImageMeta, out: Path, compression: str = GZIP, level: int | None = None,
              jobs: int = 2) -> dict:
    """Write the OCI layout at *out* (replacing an earlier envgen export there); return a summary."""
    out = Path(out)
    with atomic_dir(out) as tmp:  # the old layout stays until the new one is whole
        blobs = tmp / "blobs" / "sha256"
        img = build_image(meta, blobs, compression, level, jobs)
        (blobs / img.config_digest).write_bytes(img.config)
        (blobs / img.manifest_digest).write_bytes(img.manifest)
        index = {
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": [{
                "mediaType": MT_MANIFEST, "digest": f"sha256:{img.manifest_digest}", "size": len(img.manifest),
                "annotations": {"org.opencontainers.image.ref.name": meta.ref},
                "platform": {"architecture": "amd64", "os": "linux"},
            }],
        }
        (tmp / "index.json").write_bytes(canonical_json(index))
        (tmp / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
        (tmp / MARKER).write_bytes(canonical_json({"kind": "envgen-oci-layout", "ref": meta.ref}))
        for p in [tmp, *tmp.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return {"format": "oci", "path": str(out), "ref": meta.ref, "manifest_digest": f"sha256:{img.manifest_digest}",
            "config_digest": f"sha256:{img.config_digest}",
            "layers": [{"name": b.name, "digest": f"sha256:{b.digest}", "diff_id": f"sha256:{b.diff_id}",
                        "size": b.size} for b in img.layers],
            "size": sum(b.size for b in img.layers) + len(img.config) + len(img.manifest)}
