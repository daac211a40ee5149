"""What a bundle is made of: its member names, its compressions, and how to recognise one.

Shared by :mod:`.write` and :mod:`.restore`; see the package docstring for the layout.
"""

from __future__ import annotations

import gzip
import lzma
import os
import tarfile
from typing import BinaryIO

import zstandard

from ..attest import MT_CYCLONEDX, MT_INTOTO
from ..errors import EnvgenError, NotABundle

KIND = "envgen-bundle"
MANIFEST = "envgen-bundle.json"
SNAPSHOT = "snapshot.json"
SOURCE = "envgen-source.tar"
ENV = "env.json"
RUNS = "runs.json"
# standard metadata (envgen.attest, envgen.signing): SLSA provenance, CycloneDX SBOM, DSSE envelopes of both
ATTESTATIONS = "attestations/"
PROVENANCE = "attestations/provenance.intoto.json"
SBOM = "attestations/sbom.cdx.json"
SIGNED = {PROVENANCE: MT_INTOTO, SBOM: MT_CYCLONEDX}  # the members a signed bundle has envelopes of, their types


def envelope_of(member: str) -> str:
    """The member holding the DSSE envelope of an attestation member: ``x.json`` -> ``x.dsse.json``."""
    return member.removesuffix(".json") + ".dsse.json"
# envgen's own runtime (envgen.selfhost): its snapshot id in the manifest, its snapshot manifest as a member
SELFHOST_ID = "selfhost-snapshot-id"
SELFHOST_SNAPSHOT = "selfhost/snapshot.json"
# Members whose damage does not make the environment unavailable: they are the
# evidence for a claim of reproduced results, checked by `envgen verify`.
EVIDENCE_ROLES = ("run-input", "run-output")
COMPRESSIONS = ("zstd", "gzip", "xz", "none")
DEFAULT_COMPRESSION = "zstd"
DEFAULT_LEVELS = {"zstd": 3, "gzip": 9, "xz": 6, "none": 0}
SUFFIX = {"zstd": ".tar.zst", "gzip": ".tar.gz", "xz": ".tar.xz", "none": ".tar"}
MAX_MANIFEST = 64 << 20
CHUNK = 1 << 20

MAGIC = [(b"\x28\xb5\x2f\xfd", "zstd"), (b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz")]
# what a damaged compressed tar raises while it is read
READ_ERRORS = (tarfile.TarError, EOFError, zstandard.ZstdError, lzma.LZMAError, gzip.BadGzipFile)
NOT_A_BUNDLE_HINT = "make one with `envgen archive SPEC -o FILE`"

# a (de)compressing stream over a bundle file: zstandard's are typed as BinaryIO, the stdlib's are not
Stream = BinaryIO | gzip.GzipFile | lzma.LZMAFile


def check_compression(compression: str) -> None:
    if compression not in COMPRESSIONS:
        raise EnvgenError(f"unknown compression {compression!r}", hint=f"use one of {', '.join(COMPRESSIONS)}")


class Compressed:
    """A write-only stream that compresses into *fh*; close() flushes without closing *fh*.

    Fixed settings, single-threaded, no timestamps or file names: the bytes
    depend only on what is written.
    """

    def __init__(self, fh: BinaryIO, compression: str, level: int | None):
        check_compression(compression)
        level = DEFAULT_LEVELS[compression] if level is None else level
        self.fh = fh
        self.stream: Stream | None = None
        if compression == "zstd":
            # threads=0: single-threaded, so the bytes never depend on the core count
            cctx = zstandard.ZstdCompressor(level=level, threads=0, write_checksum=True)
            self.stream = cctx.stream_writer(fh, closefd=False)
        elif compression == "gzip":
            self.stream = gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=level)
        elif compression == "xz":
            self.stream = lzma.LZMAFile(fh, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=level)

    def write(self, data) -> int:
        return (self.stream or self.fh).write(data)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def detect_compression(head: bytes) -> str:
    """The compression whose magic *head* starts with ("none" for a plain tar or anything else)."""
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    return "none"


def open_decompressed(fh: BinaryIO) -> Stream:
    """A reader of *fh*'s decompressed bytes (*fh* itself when it is not compressed)."""
    head = fh.read(8)
    fh.seek(0)
    comp = detect_compression(head)
    if comp == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True, closefd=False)
    if comp == "gzip":
        return gzip.GzipFile(fileobj=fh, mode="rb")
    if comp == "xz":
        return lzma.LZMAFile(fh, "rb")
    return fh


def is_bundle(path: str | os.PathLike) -> bool:
    """Whether *path* is a (possibly compressed) tar whose first member is the bundle manifest."""
    try:
        with open(path, "rb") as fh:
            with tarfile.open(fileobj=open_decompressed(fh), mode="r|") as tf:
                first = tf.next()
                return first is not None and first.name == MANIFEST
    except (OSError, *READ_ERRORS):
        return False


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of the bundle at *path*, read from its first member without unpacking the rest.

    Only checks that it is a bundle manifest this envgen reads; `envgen restore`
    checks the members against it.
    """
    import json

    from .. import formats

    try:
        with open(path, "rb") as fh:
            with tarfile.open(fileobj=open_decompressed(fh), mode="r|") as tf:
                first = tf.next()
                if first is None or first.name != MANIFEST or not first.isreg() or first.size > MAX_MANIFEST:
                    raise NotABundle(f"{path}: not an envgen bundle", hint=NOT_A_BUNDLE_HINT)
                src = tf.extractfile(first)
                raw = src.read() if src is not None else b""
    except OSError as exc:
        raise EnvgenError(f"{path}: {exc.strerror or exc}") from None
    except READ_ERRORS:
        raise NotABundle(f"{path}: not an envgen bundle (not a tar this envgen reads)",
                         hint=NOT_A_BUNDLE_HINT) from None
    try:
        doc = json.loads(raw)
    except ValueError:
        raise NotABundle(f"{path}: not an envgen bundle (its manifest is not JSON)", hint=NOT_A_BUNDLE_HINT) from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise NotABundle(f"{path}: not an envgen bundle", hint=NOT_A_BUNDLE_HINT)
    formats.check(KIND, doc.get("format-version"), str(path))
    return doc
