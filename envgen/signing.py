"""Local ed25519 keys and DSSE envelopes, through securesystemslib (no crypto of our own).

* :func:`generate` — ``envgen keygen``: a PKCS#8 PEM private key (mode 0600) and
  its SubjectPublicKeyInfo PEM public key (``KEY.pub``);
* :func:`load_signer` — an ed25519 private key: envgen's PEM, or an OpenSSH
  ``ssh-keygen -t ed25519`` key (unencrypted);
* :func:`load_public` — an ed25519 public key: PEM, an OpenSSH ``ssh-ed25519 …``
  line, or the private key itself;
* :func:`sign` / :func:`verify` — a DSSE envelope (JSON: ``payload``,
  ``payloadType``, ``signatures[{keyid, sig}]``) over a payload.

ed25519 signatures are deterministic (RFC 8032): the same key and payload give
the same envelope bytes, so signed exports stay reproducible.  The key id is
securesystemslib's default: the sha256 of the public key's canonical JSON.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from .errors import EnvgenError, SignatureError
from .fsutil import atomic_write, canonical_json

MT_DSSE = "application/vnd.dsse.envelope.v1+json"
KEY_HINT = "make one with `envgen keygen KEY`, or give an unencrypted ed25519 key (ssh-keygen -t ed25519)"


def _crypto():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return serialization, ed25519


def generate(path: str | os.PathLike, force: bool = False) -> dict:
    """Write a new ed25519 key pair: *path* (private, 0600) and *path*.pub; return its key id and paths."""
    from securesystemslib.signer import CryptoSigner

    serialization, ed25519 = _crypto()
    path = Path(path)
    pub = Path(f"{path}.pub")
    for p in (path, pub):
        if (p.exists() or p.is_symlink()) and not force:
            raise EnvgenError(f"{p} exists; not overwriting a key", hint="pick another name, or pass --force")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    signer = CryptoSigner(key)
    atomic_write(path, private, mode=0o600)
    atomic_write(pub, public, mode=0o644)
    return {"private": str(path), "public": str(pub), "keyid": signer.public_key.keyid, "scheme": "ed25519"}


def _read(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise EnvgenError(f"{path}: cannot read the key: {exc.strerror}", hint=KEY_HINT) from None


def _private_key(path, data: bytes):
    serialization, ed25519 = _crypto()
    key = None
    for load in (serialization.load_pem_private_key, serialization.load_ssh_private_key):
        try:
            key = load(data, password=None)
            break
        except TypeError:  # encrypted
            raise EnvgenError(f"{path}: the key is encrypted; envgen reads unencrypted keys only",
                              hint=KEY_HINT) from None
        except Exception:  # noqa: BLE001  (not this format; cryptography raises several kinds)
            continue
    if key is None:
        return None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise EnvgenError(f"{path}: not an ed25519 key ({type(key).__name__.replace('_', '')})", hint=KEY_HINT)
    return key


def load_signer(path: str | os.PathLike):
    """A securesystemslib CryptoSigner of the ed25519 private key at *path*."""
    from securesystemslib.signer import CryptoSigner

    key = _private_key(path, _read(path))
    if key is None:
        raise EnvgenError(f"{path}: not a private key (PEM or OpenSSH)", hint=KEY_HINT)
    return CryptoSigner(key)


def load_public(path: str | os.PathLike):
    """The securesystemslib SSlibKey of the ed25519 public key at *path* (PEM, OpenSSH line, or a private key)."""
    from securesystemslib.signer import SSlibKey

    serialization, ed25519 = _crypto()
    data = _read(path)
    pub = None
    for load in (serialization.load_pem_public_key, serialization.load_ssh_public_key):
        try:
            pub = load(data)
            break
        except Exception:  # noqa: BLE001  (not this format)
            continue
    if pub is None:
        priv = _private_key(path, data)
        pub = priv.public_key() if priv is not None else None
    if pub is None:
        raise EnvgenError(f"{path}: not a public key (PEM or `ssh-ed25519 …`)", hint=KEY_HINT)
    if not isinstance(pub, ed25519.Ed25519PublicKey):
        raise EnvgenError(f"{path}: not an ed25519 public key", hint=KEY_HINT)
    return SSlibKey.from_crypto(pub)


def sign(payload: bytes, payload_type: str, signer, envelope: bytes | None = None) -> bytes:
    """The DSSE envelope of *payload*, signed by *signer* (or each of a list of signers), as canonical JSON.
    With *envelope* (an earlier envelope of the same payload), its signatures are kept beside the new ones
    (a key that signed it already signs it again, to the same bytes: ed25519 is deterministic)."""
    from securesystemslib.dsse import Envelope

    env = Envelope(payload=payload, payload_type=payload_type, signatures={})
    if envelope is not None:
        earlier_type, earlier, _ = envelope_payload(envelope, "the earlier envelope")
        if (earlier_type, earlier) != (payload_type, payload):
            raise SignatureError("an earlier envelope signs something else than what it is beside (changed after "
                                 "signing?)", hint="`envgen verify --key KEY.pub` says which; write the bundle "
                                                   "again with `envgen archive --key KEY`")
        env = Envelope.from_dict(json.loads(envelope))
    for one in signer if isinstance(signer, list) else [signer]:
        env.sign(one)
    return canonical_json(env.to_dict())


def envelope_payload(data: bytes, where: str) -> tuple[str, bytes, list[str]]:
    """(payloadType, payload, key ids) of a DSSE envelope, without checking its signatures."""
    try:
        doc = json.loads(data)
        return doc["payloadType"], base64.b64decode(doc["payload"], validate=True), [
            s.get("keyid", "") for s in doc["signatures"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"{where}: not a DSSE envelope ({exc.__class__.__name__})") from None


def verify(data: bytes, key, where: str) -> tuple[str, bytes]:
    """Check the DSSE envelope *data* against *key*; return (payloadType, payload) or raise SignatureError."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError

    envelope_payload(data, where)  # shape first: one clear line for a damaged envelope
    try:
        env = Envelope.from_dict(json.loads(data))
        env.verify([key], 1)
    except VerificationError:
        raise SignatureError(f"{where}: the signature does not verify with key {key.keyid[:16]}…",
                             hint="the file was changed after signing, or another key signed it") from None
    except Exception as exc:  # noqa: BLE001  (a malformed envelope, whatever securesystemslib raises)
        raise SignatureError(f"{where}: not a valid DSSE envelope ({exc.__class__.__name__})") from None
    return env.payload_type, env.payload


# --------------------------------------------------------------------------- checking what an artifact carries


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def check_envelopes(where: str, payloads: dict[str, bytes], envelopes: list[tuple[str, bytes]], key) -> dict:
    """Check that every payload (``provenance``, ``sbom``) is signed by *key* in one of *envelopes*.

    Envelopes by other keys are left alone; each one by *key* must verify and
    sign bytes that are one of *payloads* exactly.  Any failure: SignatureError.
    """
    if not payloads:
        raise SignatureError(f"{where}: carries no provenance or SBOM to check")
    mine = []
    for w, env in envelopes:
        if key.keyid in envelope_payload(env, w)[2]:
            mine.append((w, env))
    if not mine:
        raise SignatureError(f"{where}: no signature by key {key.keyid[:16]}… ({len(envelopes)} by other keys)",
                             hint="sign it with `envgen sign` or export with --key; or give the right public key")
    by_sha = {_sha(data): label for label, data in payloads.items()}
    covered = set()
    for w, env in mine:
        _, payload = verify(env, key, w)
        label = by_sha.get(_sha(payload))
        if label is None:
            raise SignatureError(f"{w}: signs bytes that this artifact no longer holds (changed after signing)")
        covered.add(label)
    unsigned = sorted(set(payloads) - covered)
    if unsigned:
        raise SignatureError(f"{where}: the {', '.join(unsigned)} is not signed by key {key.keyid[:16]}…",
                             hint="it was changed after signing, or never signed")
    return {"keyid": key.keyid, "signed": sorted(covered), "envelopes": len(mine)}


def _check_subject(where: str, stmt_bytes: bytes, digest: str) -> None:
    try:
        stmt = json.loads(stmt_bytes)
        digests = {s["digest"]["sha256"] for s in stmt["subject"]}
    except (ValueError, KeyError, TypeError):
        raise SignatureError(f"{where}: the provenance is not an in-toto Statement") from None
    if digest not in digests:
        raise SignatureError(f"{where}: the provenance's subject is not this image ({digest[:16]}…)")


def check_oci(layout: Path, key) -> dict:
    """The referrers of the layout's image: provenance and SBOM, signed by *key*; the provenance names the image."""
    from .attest import MT_CYCLONEDX, MT_INTOTO
    from .export.oci import find_referrers, image_manifest, read_blob

    desc, _ = image_manifest(layout)
    payloads: dict[str, bytes] = {}
    envelopes = []
    for ref in find_referrers(layout, desc["digest"]):
        m = ref["manifest"]
        for layer in m.get("layers", []):
            try:
                data = read_blob(layout, layer["digest"])
            except (OSError, ValueError, KeyError, TypeError):
                raise SignatureError(f"{layout}: the {m.get('artifactType')} referrer's blob {layer.get('digest')} "
                                     f"is missing or damaged (its bytes do not hash to its name)") from None
            if m.get("artifactType") == MT_INTOTO:
                payloads["provenance"] = data
            elif m.get("artifactType") == MT_CYCLONEDX:
                payloads["sbom"] = data
            elif m.get("artifactType") == MT_DSSE:
                envelopes.append((f"{layout}: signature {ref['digest'][:19]}…", data))
    if "provenance" in payloads:
        _check_subject(str(layout), payloads["provenance"], desc["digest"].removeprefix("sha256:"))
    out = check_envelopes(str(layout), payloads, envelopes, key)
    return {**out, "kind": "oci", "subject": desc["digest"]}


def check_sif(path: Path, key) -> dict:
    from .export import sif as S

    info = S.read_sif(path)
    payloads: dict[str, bytes] = {}
    envelopes = []
    for d in info.descriptors:
        if d.datatype == S.DT_SBOM:
            payloads["sbom"] = info.read(d)
        elif d.datatype == S.DT_GENERICJSON and d.name == S.PROVENANCE_NAME:
            payloads["provenance"] = info.read(d)
        elif d.datatype == S.DT_SIGNATURE:
            envelopes.append((f"{path}: signature object {d.id}", info.read(d)))
    part = S.partition_sha256(info, info.primary())
    if "provenance" in payloads:
        _check_subject(str(path), payloads["provenance"], part)
    return {**check_envelopes(str(path), payloads, envelopes, key), "kind": "sif", "subject": f"sha256:{part}"}


def check_members(where: str, members: dict[str, bytes], key) -> dict:
    """A bundle's ``attestations/`` members: provenance and SBOM, signed by *key* (``*.dsse.json``)."""
    payloads = {label: members[name] for label, name in (("provenance", "attestations/provenance.intoto.json"),
                                                         ("sbom", "attestations/sbom.cdx.json")) if name in members}
    envelopes = [(f"{where}: {n}", data) for n, data in sorted(members.items()) if n.endswith(".dsse.json")]
    return {**check_envelopes(where, payloads, envelopes, key), "kind": "bundle"}


def check_artifact(path: str | os.PathLike, key) -> dict:
    """Check the signatures an OCI layout, a SIF or a DSSE envelope file carries; SignatureError if any fails."""
    path = Path(path)
    if path.is_dir():
        return check_oci(path, key)
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise EnvgenError(f"{path}: cannot read: {exc.strerror}") from None
    if head[0x20:0x2A] == b"SIF_MAGIC\0":
        return check_sif(path, key)
    if head.lstrip()[:1] == b"{":
        ptype, _ = verify(path.read_bytes(), key, str(path))
        return {"kind": "envelope", "keyid": key.keyid, "signed": [ptype], "envelopes": 1}
    raise EnvgenError(f"{path}: not an OCI layout, a SIF, a bundle or a DSSE envelope")
