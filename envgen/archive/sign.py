"""Sign a bundle that is already written: ``envgen sign BUNDLE --key KEY``.

A bundle signed when it is written (``envgen archive --key``) carries a DSSE
envelope of its provenance and of its SBOM (``attestations/*.dsse.json``).
Signing a written bundle adds those envelopes (or, where it has them, adds
the new keys' signatures to them) and changes nothing else: every other
member is copied as it is, header and bytes, the manifest lists the
envelopes as it would have, and the bundle is compressed as it was (at
that compression's default level). An unsigned bundle signed afterwards is
therefore the very bundle ``envgen archive --key`` writes, byte for byte.

Two passes over the bundle: the first reads the manifest and the signed
members, the second writes the new bundle beside the old one, which it
replaces in one rename (an interrupted signing leaves the bundle as it was).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from ..clock import SnapshotDate
from ..errors import EnvgenError
from ..fsutil import atomic_output, file_sha256
from ..tarfmt import entry
from .members import (
    MANIFEST,
    READ_ERRORS,
    SIGNED,
    Compressed,
    detect_compression,
    envelope_of,
    open_decompressed,
    read_manifest,
)


def sign_bundle(bundle: str | Path, signers: list) -> dict:
    """Sign the provenance and SBOM of *bundle* with each of *signers* (in place, atomically)."""
    from ..signing import sign

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    wanted = set(SIGNED) | {envelope_of(p) for p in SIGNED}
    found = _members(bundle, wanted)
    members = {m["path"]: m for m in manifest["members"]}
    envelopes: dict[str, bytes] = {}
    for path, ptype in SIGNED.items():
        if path not in found:
            continue
        data = found[path]
        if path not in members or hashlib.sha256(data).hexdigest() != members[path]["sha256"]:
            raise EnvgenError(f"{bundle}: {path} is not the member its manifest lists",
                              hint="`envgen verify` says what else is wrong with it")
        envelopes[envelope_of(path)] = sign(data, ptype, signers, found.get(envelope_of(path)))
    if not envelopes:
        raise EnvgenError(f"{bundle}: no provenance to sign (written by an envgen before attestations)",
                          hint="write it again: envgen archive SPEC -o BUNDLE --key KEY")
    for path, data in envelopes.items():
        members[path] = {"path": path, "role": "signature", "sha256": hashlib.sha256(data).hexdigest(),
                         "size": len(data)}
    manifest["members"] = sorted(members.values(), key=lambda m: m["path"])
    mbytes = json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False).encode() + b"\n"
    mtime = SnapshotDate.parse(manifest["snapshot-date"]).epoch
    _rewrite(bundle, mbytes, envelopes, mtime)
    return {"path": str(bundle), "signed": sorted(envelopes), "keys": len(signers), "sha256": file_sha256(bundle)}


def _members(bundle: Path, names: set[str]) -> dict[str, bytes]:
    """The bytes of the members of *bundle* named in *names* (small ones: attestations)."""
    out: dict[str, bytes] = {}
    try:
        with open(bundle, "rb") as fh, tarfile.open(fileobj=open_decompressed(fh), mode="r|") as tf:
            for ti in tf:
                if ti.name in names and ti.isreg():
                    src = tf.extractfile(ti)
                    out[ti.name] = src.read() if src is not None else b""
    except READ_ERRORS as exc:
        raise EnvgenError(f"{bundle}: damaged ({exc.__class__.__name__})",
                          hint="`envgen verify` says which member") from None
    return out


def _rewrite(bundle: Path, mbytes: bytes, envelopes: dict[str, bytes], mtime: int) -> None:
    """*bundle* again, with the manifest *mbytes* and the *envelopes* members in their places (by path, as
    every member is), every other member copied as it is."""
    with open(bundle, "rb") as fh:
        compression = detect_compression(fh.read(8))
    todo = sorted(envelopes)
    with open(bundle, "rb") as fh, tarfile.open(fileobj=open_decompressed(fh), mode="r|") as src, \
            atomic_output(bundle) as out:
        comp = Compressed(out, compression, None)
        with tarfile.open(fileobj=comp, mode="w|",  # type: ignore[call-overload]
                          format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:

            def envelopes_before(name: str | None) -> None:
                while todo and (name is None or todo[0] < name):
                    path = todo.pop(0)
                    tf.addfile(entry(path, size=len(envelopes[path]), mtime=mtime), io.BytesIO(envelopes[path]))

            for ti in src:
                if ti.name == MANIFEST:
                    tf.addfile(entry(MANIFEST, size=len(mbytes), mtime=int(ti.mtime)), io.BytesIO(mbytes))
                    continue
                envelopes_before(ti.name)
                if ti.name in envelopes:
                    continue  # an earlier envelope: its signatures are in the new one
                tf.addfile(ti, src.extractfile(ti) if ti.isreg() else None)
            envelopes_before(None)
        comp.close()
