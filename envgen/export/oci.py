"""OCI image layout writer: ``oci-layout``, ``index.json``, ``blobs/sha256/…``."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..fsutil import atomic_dir, atomic_write, canonical_json
from ..layout import IMAGE_USER
from . import MARKER, ImageMeta
from .layers import GZIP, Extra, LayerBlob, plan_layers, write_layer_blob

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"  # the OCI 1.1 empty descriptor's blob
SIGNS_ANNOTATION = "dev.envgen.signs"  # on a signature referrer: the digest of the blob its envelope signs
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
        referrers = attach_referrers(tmp, meta, img)
        (tmp / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
        (tmp / MARKER).write_bytes(canonical_json({"kind": "envgen-oci-layout", "ref": meta.ref}))
        for p in [tmp, *tmp.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return {"format": "oci", "path": str(out), "ref": meta.ref, "manifest_digest": f"sha256:{img.manifest_digest}",
            "config_digest": f"sha256:{img.config_digest}",
            "layers": [{"name": b.name, "digest": f"sha256:{b.digest}", "diff_id": f"sha256:{b.diff_id}",
                        "size": b.size} for b in img.layers],
            "referrers": referrers,
            "size": sum(b.size for b in img.layers) + len(img.config) + len(img.manifest)}


# --------------------------------------------------------------------------- OCI 1.1 referrers


def _blob(blobs: Path, data: bytes) -> str:
    """Write a blob named by its digest, atomically (`envgen sign` adds blobs to a published layout)."""
    digest = _sha(data)
    if not (blobs / digest).is_file() or (blobs / digest).stat().st_size != len(data):
        atomic_write(blobs / digest, data)
    return digest


def write_referrer(blobs: Path, subject: dict, artifact_type: str, payload: bytes, annotations: dict) -> dict:
    """Write an artifact manifest whose ``subject`` is *subject*, holding *payload* as its one layer.

    The config is the OCI 1.1 empty descriptor.  The manifest is a blob of the layout
    but not an entry of ``index.json``: the image index stays byte for byte the same,
    and a reader finds the artifact by its ``subject`` (:func:`find_referrers`).
    Returns its descriptor (with ``artifactType`` and ``annotations``, as a referrers list has).
    """
    blobs.mkdir(parents=True, exist_ok=True)
    _blob(blobs, EMPTY)
    layer = _blob(blobs, payload)
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": MT_EMPTY, "digest": f"sha256:{_sha(EMPTY)}", "size": len(EMPTY), "data": "e30="},
        "layers": [{"mediaType": artifact_type, "digest": f"sha256:{layer}", "size": len(payload)}],
        "subject": subject,
        "annotations": annotations,
    })
    digest = _blob(blobs, manifest)
    return {"mediaType": MT_MANIFEST, "digest": f"sha256:{digest}", "size": len(manifest),
            "artifactType": artifact_type, "annotations": annotations}


def attach_referrers(layout: Path, meta: ImageMeta, img: Image) -> list[dict]:
    """The SBOM, the SLSA provenance and (with signers) their DSSE envelopes, as referrers of the image."""
    from .. import attest

    blobs = layout / "blobs" / "sha256"
    subject = {"mediaType": MT_MANIFEST, "digest": f"sha256:{img.manifest_digest}", "size": len(img.manifest)}
    created = {"org.opencontainers.image.created": meta.created}
    out = []
    signed: list[tuple[bytes, str]] = []
    if meta.sbom is not None:
        out.append(write_referrer(blobs, subject, attest.MT_CYCLONEDX, meta.sbom, dict(created)))
        signed.append((meta.sbom, attest.MT_CYCLONEDX))
    byproducts = ([{"name": SBOM_PATH.rsplit("/", 1)[1], "digest": {"sha256": _sha(meta.sbom)},
                    "mediaType": attest.MT_CYCLONEDX}] if meta.sbom is not None else None)
    if meta.provenance is not None and byproducts:
        meta.provenance.setdefault("runDetails", {})["byproducts"] = byproducts
    stmt = meta.provenance_statement([attest.subject(meta.ref, img.manifest_digest, MT_MANIFEST)])
    if stmt is not None:
        out.append(write_referrer(blobs, subject, attest.MT_INTOTO, stmt,
                                  {**created, "in-toto.io/predicate-type": attest.SLSA_PROVENANCE}))
        signed.append((stmt, attest.MT_INTOTO))
    for signer in meta.signers:
        out.extend(sign_payloads(blobs, subject, signed, signer, created))
    return out


def sign_payloads(blobs: Path, subject: dict, payloads: list[tuple[bytes, str]], signer, annotations: dict) -> list:
    from ..signing import MT_DSSE, sign

    out = []
    for payload, ptype in payloads:
        env = sign(payload, ptype, signer)
        out.append(write_referrer(blobs, subject, MT_DSSE, env, {
            **annotations, SIGNS_ANNOTATION: f"sha256:{_sha(payload)}",
            "dev.envgen.keyid": signer.public_key.keyid}))
    return out


def image_manifest(layout: Path) -> tuple[dict, bytes]:
    """The descriptor of the layout's (first) image in ``index.json``, and that manifest's bytes."""
    from ..errors import EnvgenError

    try:
        index = json.loads((layout / "index.json").read_bytes())
        desc = index["manifests"][0]
        data = read_blob(layout, desc["digest"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        raise EnvgenError(f"{layout}: not a readable OCI image layout (index.json)") from None
    return desc, data


def blob_path(layout: Path, digest: str) -> Path:
    """Where a blob is in the layout (ValueError if *digest* is not a well-formed sha256 digest)."""
    algo, _, hexd = str(digest).partition(":")
    if algo != "sha256" or len(hexd) != 64 or not all(c in "0123456789abcdef" for c in hexd):
        raise ValueError(f"unsupported digest {digest!r}")
    return layout / "blobs" / "sha256" / hexd


def read_blob(layout: Path, digest: str) -> bytes:
    """A blob's bytes, checked against its digest (ValueError if they differ or the name is not sha256)."""
    path = blob_path(layout, digest)
    data = path.read_bytes()
    if _sha(data) != path.name:
        raise ValueError(f"blob {digest} does not hash to its name")
    return data


def find_referrers(layout: Path, manifest_digest: str) -> list[dict]:
    """Every artifact manifest in the layout whose ``subject`` is *manifest_digest*: {digest, manifest}, sorted.

    Found by reading the blobs (small JSON ones), as a registry's referrers API
    does: the image layout has no list of them.
    """
    out = []
    for p in sorted((layout / "blobs" / "sha256").iterdir()):
        try:
            if p.stat().st_size > (16 << 20):
                continue
            with open(p, "rb") as fh:
                if fh.read(1) != b"{":
                    continue
            doc = json.loads(p.read_bytes())
        except (OSError, ValueError):
            continue
        if (isinstance(doc, dict) and doc.get("mediaType") == MT_MANIFEST and isinstance(doc.get("subject"), dict)
                and doc["subject"].get("digest") == manifest_digest):
            out.append({"digest": f"sha256:{p.name}", "manifest": doc})
    return out
