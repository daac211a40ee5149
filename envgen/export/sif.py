"""Apptainer SIF files, written and read without Apptainer.

Layout (see docs/formats.md, "Images"): the 128-byte global header, 48
descriptors of 585 bytes from offset 4096, then the objects in this order:

1. Deffile (0x4001): how the image was made (spec, snapshot, tree digest, tools);
2. Labels (0x4003): a JSON object of labels (also at ``/.singularity.d/labels.json``),
   including ``dev.envgen.partition-sha256``, which the reader checks;
3. SBOM (0x4009, CycloneDX JSON);
4. the squashfs PrimSys partition (0x4004), aligned to 4096.

Deterministic: nil UUID, uid/gid 0, and every time (the header's created and
modified, each descriptor's) the snapshot date, as in the squashfs inside it
and the OCI image's ``created``: one clock.

The image has no ``/bin/sh``: the runscript is a Python script
(``#!/opt/env/bin/python``) that execs the spec's command (or its arguments);
the ``env/*.sh`` and ``actions/*`` scripts are the ones Apptainer interprets
with its embedded shell, so they need no shell in the image either.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import EnvgenError
from ..fsutil import atomic_output, canonical_json, file_sha256
from . import ImageMeta
from .layers import writable_dirs
from .squashfs import REPRO_FLAGS, make_squashfs, mksquashfs_version, path_of, time_flags

LAUNCH = b"#!/usr/bin/env run-singularity\n"
MAGIC = b"SIF_MAGIC\0"
VERSION = b"01\0"
ARCH_AMD64 = b"02\0"
HEADER_SIZE = 128
DESCR_OFFSET = 4096
DESCR_SIZE = 585
DESCR_TOTAL = 48
DATA_OFFSET = DESCR_OFFSET + DESCR_SIZE * DESCR_TOTAL  # 32176
ALIGN = 4096
GROUP_MASK = 0xF0000000

DT_DEFFILE, DT_ENVVAR, DT_LABELS, DT_PARTITION, DT_SIGNATURE, DT_GENERICJSON, DT_GENERIC = range(0x4001, 0x4008)
DT_CRYPTO, DT_SBOM, DT_OCIROOTINDEX, DT_OCIBLOB = range(0x4008, 0x400C)
FS_SQUASH = 1
PART_SYSTEM, PART_PRIMSYS, PART_DATA = 1, 2, 3
SBOM_CYCLONEDX_JSON = 1
HASH_SHA256 = 1  # the sif library's hash type codes: SHA256 1, SHA384 2, SHA512 3, BLAKE2S 4, BLAKE2B 5
ENTITY_LEN = 256  # a signature descriptor's extra: int32 hash type, then the signing entity (a key fingerprint)
PROVENANCE_NAME = "provenance.intoto.json"

HEADER = struct.Struct("<32s10s3s3s16sqqqqqqqq")
DESCR = struct.Struct("<iBIIIqqqqqqq128s384s")
assert HEADER.size == HEADER_SIZE and DESCR.size == DESCR_SIZE


@dataclass
class Descriptor:
    datatype: int
    id: int
    groupid: int
    link: int
    offset: int
    size: int
    size_padded: int
    name: str
    extra: bytes

    @property
    def parttype(self) -> int | None:
        if self.datatype != DT_PARTITION:
            return None
        return struct.unpack_from("<ii", self.extra)[1]

    @property
    def fstype(self) -> int | None:
        if self.datatype != DT_PARTITION:
            return None
        return struct.unpack_from("<ii", self.extra)[0]


@dataclass
class SifInfo:
    path: Path
    arch: bytes
    created: int
    modified: int
    data_offset: int
    data_size: int
    descriptors: list[Descriptor]

    def primary(self) -> Descriptor:
        parts = [d for d in self.descriptors if d.datatype == DT_PARTITION and d.parttype == PART_PRIMSYS]
        if not parts:
            raise EnvgenError(f"{self.path}: not a usable SIF: no primary system partition")
        return parts[0]

    def read(self, d: Descriptor) -> bytes:
        with open(self.path, "rb") as fh:
            fh.seek(d.offset)
            return fh.read(d.size)

    def labels(self) -> dict:
        for d in self.descriptors:
            if d.datatype == DT_LABELS:
                try:
                    data = json.loads(self.read(d))
                except (ValueError, UnicodeDecodeError):
                    raise EnvgenError(f"{self.path}: corrupt SIF: its labels object is not JSON") from None
                if not isinstance(data, dict):
                    raise EnvgenError(f"{self.path}: corrupt SIF: its labels object is not a JSON object")
                return data
        return {}


# --------------------------------------------------------------------------- writing


def _name(s: str) -> bytes:
    b = s.encode()
    if len(b) > 127:
        raise ValueError(f"SIF object name too long: {s}")
    return b


def pack_descriptor(d: Descriptor, epoch: int) -> bytes:
    """Descriptor *d*, created and modified at *epoch*, uid/gid 0."""
    return DESCR.pack(d.datatype, 1, d.id, d.groupid, d.link, d.offset, d.size, d.size_padded,
                      epoch, epoch, 0, 0, _name(d.name), d.extra)


def signature_extra(keyid: str) -> bytes:
    """A signature descriptor's extra: SHA-256, and the first 20 bytes of the signer's key id as the entity."""
    return struct.pack("<i", HASH_SHA256) + bytes.fromhex(keyid)[:20].ljust(ENTITY_LEN, b"\0")


def write_sif(out: Path, objects: list[tuple], epoch: int) -> Path:
    """Write a SIF at *out* from *objects*: (datatype, name, data or a file path, extra[, link]) in order.

    *data* may also be ``(path, offset, size)``: that slice of a file.  *link* is the
    id (1-based, in order) of the object this one refers to (a signature's signed object).

    Partitions are aligned to 4096; every object is in group 1; every time
    (header and descriptors) is *epoch*.  *out* appears whole or not at all.
    """
    out = Path(out)
    with atomic_output(out) as fh:
        fh.write(b"\0" * DATA_OFFSET)
        descrs = []
        pos = DATA_OFFSET
        for i, obj in enumerate(objects, start=1):
            dt, name, data, extra = obj[:4]
            link = obj[4] if len(obj) > 4 else 0
            start = pos
            if dt == DT_PARTITION and pos % ALIGN:
                pad = ALIGN - pos % ALIGN
                fh.write(b"\0" * pad)
                start = pos + pad
            if isinstance(data, (bytes, bytearray)):
                fh.write(data)
                size = len(data)
            elif isinstance(data, tuple):
                src_path, src_off, size = data
                for chunk in read_range(src_path, src_off, size, "truncated while copying an object"):
                    fh.write(chunk)
            else:
                with open(data, "rb") as src:
                    shutil.copyfileobj(src, fh, 1 << 20)
                size = os.path.getsize(data)
            descrs.append(Descriptor(dt, i, 1 | GROUP_MASK, link, start, size, size + (start - pos), name, extra))
            pos = start + size
        fh.seek(DESCR_OFFSET)
        for d in descrs:
            fh.write(pack_descriptor(d, epoch))
        part = next((d for d in descrs if d.datatype == DT_PARTITION and d.parttype == PART_PRIMSYS), None)
        arch = part.extra[8:11] if part else b"\0\0\0"
        fh.seek(0)
        fh.write(HEADER.pack(LAUNCH, MAGIC, VERSION, arch, b"\0" * 16, epoch, epoch,
                             DESCR_TOTAL - len(descrs), DESCR_TOTAL, DESCR_OFFSET, DESCR_SIZE * DESCR_TOTAL,
                             DATA_OFFSET, pos - DATA_OFFSET))
    return out


def partition_extra(fstype: int = FS_SQUASH, parttype: int = PART_PRIMSYS, arch: bytes = ARCH_AMD64) -> bytes:
    return struct.pack("<ii3s", fstype, parttype, arch)


# --------------------------------------------------------------------------- reading


def read_sif(path: Path) -> SifInfo:
    """Parse and check a SIF's header and descriptors; a one-line EnvgenError if anything is off."""
    path = Path(path)

    def bad(why: str) -> EnvgenError:
        return EnvgenError(f"{path}: corrupt or unsupported SIF: {why}")

    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(DATA_OFFSET)
    except OSError as exc:
        raise EnvgenError(f"{path}: cannot read: {exc.strerror}") from None
    if len(head) < HEADER_SIZE:
        raise bad("shorter than a SIF header")
    (_launch, magic, version, arch, _uuid, created, modified, dfree, dtotal, doff, dsize,
     data_off, data_size) = HEADER.unpack_from(head)
    if magic != MAGIC:
        raise bad("no SIF_MAGIC")
    if version != VERSION:
        raise bad(f"version {version!r}, expected {VERSION!r}")
    if not (0 < dtotal <= 4096) or dsize != dtotal * DESCR_SIZE or doff < HEADER_SIZE:
        raise bad(f"descriptor table ({dtotal} descriptors, {dsize} bytes) is inconsistent")
    if not (0 <= dfree <= dtotal):
        raise bad("free-descriptor count out of range")
    if doff + dsize > size or data_off < doff + dsize or data_off + data_size > size or data_size < 0:
        raise bad("header offsets point outside the file")
    if len(head) < doff + dsize:
        with open(path, "rb") as fh:
            fh.seek(doff)
            table = fh.read(dsize)
    else:
        table = head[doff:doff + dsize]
    descrs: list[Descriptor] = []
    ids = set()
    for i in range(dtotal):
        (dt, used, did, gid, link, off, dsz, dpad, _ct, _mt, _uid, _gid, name, extra) = DESCR.unpack_from(
            table, i * DESCR_SIZE)
        if used == 0:
            continue
        if used != 1:
            raise bad(f"descriptor {i}: 'used' flag is {used}")
        if not (DT_DEFFILE <= dt <= DT_OCIBLOB):
            raise bad(f"descriptor {i}: unknown data type {dt:#x}")
        if did == 0 or did in ids:
            raise bad(f"descriptor {i}: bad or duplicate id {did}")
        ids.add(did)
        if off < data_off or dsz < 0 or off + dsz > size or dpad < dsz:
            raise bad(f"descriptor {did}: object [{off}, +{dsz}) lies outside the data section")
        descrs.append(Descriptor(dt, did, gid, link, off, dsz, dpad,
                                 name.rstrip(b"\0").decode("utf-8", "replace"), extra))
    if len(descrs) != dtotal - dfree:
        raise bad(f"{len(descrs)} descriptors in use, the header says {dtotal - dfree}")
    info = SifInfo(path, arch, created, modified, data_off, data_size, descrs)
    for d in descrs:
        if d.datatype == DT_PARTITION and d.parttype == PART_PRIMSYS:
            if d.fstype != FS_SQUASH:
                raise bad(f"primary partition has filesystem type {d.fstype}, only squashfs is supported")
            with open(path, "rb") as fh:
                fh.seek(d.offset)
                sb = fh.read(96)
            if sb[:4] != b"hsqs":
                raise bad("primary partition is not a squashfs image (no hsqs magic)")
            bytes_used = struct.unpack_from("<q", sb, 40)[0]
            if bytes_used > d.size:
                raise bad("squashfs partition is truncated")
    return info


def partition_sha256(info: SifInfo, d: Descriptor) -> str:
    h = hashlib.sha256()
    for chunk in read_range(info.path, d.offset, d.size, "corrupt SIF: partition is truncated"):
        h.update(chunk)
    return h.hexdigest()


def read_range(path, offset: int, size: int, truncated: str):
    """The *size* bytes of *path* from *offset*, in chunks of up to 1 MiB; a file that ends first is
    an error, ``PATH: <truncated>``."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        left = size
        while left:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                raise EnvgenError(f"{path}: {truncated}")
            yield chunk
            left -= len(chunk)


# --------------------------------------------------------------------------- the env as a SIF


def attestation_objects(meta: ImageMeta, objects: list[tuple], part_sha: str) -> list[tuple]:
    """After the partition: the SLSA provenance (GenericJSON) and, per signer, a signature of it and of the SBOM.

    The provenance's subject is the partition's sha256 (what the image runs; the
    SIF's own bytes change when a signature is added).  Each signature object is
    a DSSE envelope, linked to the object it signs.
    """
    from .. import attest

    out: list[tuple] = []
    sbom_id = next((i for i, o in enumerate(objects, start=1) if o[0] == DT_SBOM), None)
    if meta.provenance is not None and meta.sbom is not None:
        meta.provenance.setdefault("runDetails", {})["byproducts"] = [
            {"name": "sbom.cdx.json", "digest": {"sha256": hashlib.sha256(meta.sbom).hexdigest()},
             "mediaType": attest.MT_CYCLONEDX}]
    stmt = meta.provenance_statement([attest.subject(f"{meta.name}.squashfs", part_sha)])
    prov_id = None
    if stmt is not None:
        out.append((DT_GENERICJSON, PROVENANCE_NAME, stmt, b""))
        prov_id = len(objects) + len(out)
    signed = [(i, data, ptype) for i, data, ptype in ((sbom_id, meta.sbom, attest.MT_CYCLONEDX),
                                                     (prov_id, stmt, attest.MT_INTOTO)) if i and data is not None]
    for signer in meta.signers:
        out.extend(signature_objects(signed, signer))
    return out


def signature_objects(signed: list[tuple[int, bytes, str]], signer) -> list[tuple]:
    from ..signing import sign

    return [(DT_SIGNATURE, f"dsse-{i}.json", sign(data, ptype, signer), signature_extra(signer.public_key.keyid), i)
            for i, data, ptype in signed]


def runscript(command: list[str]) -> bytes:
    return (
        "#!/opt/env/bin/python\n"
        "# envgen: the image has no /bin/sh, so the runscript is Python.\n"
        "import os, sys\n"
        f"DEFAULT = {json.dumps(list(command))}\n"
        "argv = sys.argv[1:] or DEFAULT\n"
        "if not argv:\n"
        "    sys.exit('envgen: this image has no [run] command; give one')\n"
        "os.execvp(argv[0], argv)\n"
    ).encode()


ACTIONS = {
    "exec": '#!/bin/sh\nfor script in /.singularity.d/env/*.sh; do\n    if [ -f "$script" ]; then\n'
            '        . "$script"\n    fi\ndone\nexec "$@"\n',
    "run": '#!/bin/sh\nfor script in /.singularity.d/env/*.sh; do\n    if [ -f "$script" ]; then\n'
           '        . "$script"\n    fi\ndone\nif test -x /.singularity.d/runscript; then\n'
           '    exec /.singularity.d/runscript "$@"\nfi\necho "No runscript found" >&2\nexit 1\n',
    "shell": '#!/bin/sh\nfor script in /.singularity.d/env/*.sh; do\n    if [ -f "$script" ]; then\n'
             '        . "$script"\n    fi\ndone\nexec /opt/env/bin/python "$@"\n',
    "start": '#!/bin/sh\nexit 0\n',
    "test": '#!/bin/sh\nfor script in /.singularity.d/env/*.sh; do\n    if [ -f "$script" ]; then\n'
            '        . "$script"\n    fi\ndone\nexec /opt/env/bin/python -c "import sys; print(sys.version)"\n',
}


def singularity_files(meta: ImageMeta, labels: dict) -> tuple[dict[str, tuple[bytes, int]], dict[str, int]]:
    env = dict(item.split("=", 1) for item in meta.env())
    env_sh = "".join(f"export {k}={_sh_quote(v)}\n" for k, v in sorted(env.items()))
    files = {
        "/.singularity.d/runscript": (runscript(meta.command), 0o755),
        "/.singularity.d/labels.json": (canonical_json(labels) + b"\n", 0o644),
        "/.singularity.d/env/01-base.sh": (b"#!/bin/sh\n", 0o755),
        "/.singularity.d/env/90-environment.sh": (("#!/bin/sh\n# envgen\n" + env_sh).encode(), 0o755),
        "/.singularity.d/env/99-base.sh": (b"#!/bin/sh\n", 0o755),
    }
    for name, text in ACTIONS.items():
        files[f"/.singularity.d/actions/{name}"] = (text.encode(), 0o755)
    dirs = {"/.singularity.d": 0o755, "/.singularity.d/env": 0o755, "/.singularity.d/actions": 0o755,
            "/.singularity.d/libs": 0o755}
    return files, dirs


def _sh_quote(v: str) -> str:
    return "'" + v.replace("'", "'\"'\"'") + "'"


def deffile(meta: ImageMeta, tool: str) -> bytes:
    lines = [
        "# Made by envgen, not by apptainer build: this file records how.",
        "Bootstrap: envgen",
        f"From: {meta.name}",
        "",
        "%labels",
        *[f"    {k} {v}" for k, v in sorted(meta.labels().items())],
        "",
        "%help",
        f"    envgen env {meta.name}: snapshot {meta.snapshot_id}, tree digest {meta.tree_digest}.",
        f"    Built offline from the snapshot's pinned wheels and .debs; squashed with {tool}",
        f"    ({' '.join(REPRO_FLAGS + time_flags(meta.epoch))}).",
        "",
        "%environment",
        *[f"    export {item}" for item in meta.env()],
        "",
        "%runscript",
        f"    exec {' '.join(meta.command) if meta.command else '/opt/env/bin/python'} \"$@\"",
        "",
    ]
    return "\n".join(lines).encode()


def write_env_sif(meta: ImageMeta, out: Path) -> dict:
    """Squash the env (+ /.singularity.d) and wrap it in a SIF at *out*."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        labels = dict(meta.labels())
        files, dirs = singularity_files(meta, labels)
        sqsh = make_squashfs(meta.root, work / "rootfs.sqsh", meta.epoch, files, dirs,
                             mode_fixes=writable_dirs(meta.root))  # /tmp 1777, as in every image
        part_sha = file_sha256(sqsh)
        labels_obj = dict(labels)
        labels_obj["dev.envgen.partition-sha256"] = part_sha
        tool = mksquashfs_version()
        objects: list[tuple[int, str, bytes | Path, bytes]] = [
            (DT_DEFFILE, "", deffile(meta, tool), b""),
            (DT_LABELS, "", canonical_json(labels_obj), b""),
        ]
        if meta.sbom is not None:
            objects.append((DT_SBOM, "sbom.cdx.json", meta.sbom, struct.pack("<i", SBOM_CYCLONEDX_JSON)))
        objects.append((DT_PARTITION, "", sqsh, partition_extra()))
        objects.extend(attestation_objects(meta, objects, part_sha))
        write_sif(out, objects, meta.epoch)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"format": "sif", "path": str(out), "sha256": file_sha256(out), "partition_sha256": part_sha,
            "size": out.stat().st_size, "mksquashfs": tool}


def write_env_sqsh(meta: ImageMeta, out: Path) -> dict:
    """The plain squashfs of the env for enroot/pyxis (/tmp and /var/tmp made 1777, nothing added)."""
    out = Path(out)
    with atomic_output(out) as fh:  # mksquashfs writes the temporary file; it becomes *out* only whole
        make_squashfs(meta.root, path_of(fh), meta.epoch, mode_fixes=writable_dirs(meta.root))
    return {"format": "sqsh", "path": str(out), "sha256": file_sha256(out), "size": out.stat().st_size,
            "mksquashfs": mksquashfs_version()}

