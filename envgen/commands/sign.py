"""envgen keygen KEY | envgen sign FILE --key KEY"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from ..errors import EnvgenError

MAX_PLAIN = 64 << 20  # a plain file's envelope carries the whole file, base64-encoded


def register(sub, parents, fmt):
    k = sub.add_parser(
        "keygen",
        parents=parents,
        formatter_class=fmt,
        help="make an ed25519 key pair for signing provenance (KEY and KEY.pub)",
        description=textwrap.dedent(
            """\
            Write a new ed25519 private key to KEY (PKCS#8 PEM, unencrypted, mode 0600)
            and its public key to KEY.pub (PEM). Sign with the private key (`envgen
            export --key KEY`, `envgen archive --key KEY`, `envgen sign FILE --key KEY`);
            give the public key to whoever checks (`envgen verify --key KEY.pub`).
            An OpenSSH ed25519 key (ssh-keygen -t ed25519, no passphrase) works too,
            with its .pub line. Prints the key id (the sha256 of the public key's
            canonical JSON, as securesystemslib computes it). An existing KEY is
            not overwritten without --force.
            """
        ),
        epilog="examples:\n  envgen keygen ~/.config/envgen/release.key\n"
               "  envgen export specs/abide.toml -o abide.oci --key ~/.config/envgen/release.key",
    )
    k.add_argument("key", metavar="KEY", help="where to write the private key (the public one goes to KEY.pub)")
    k.add_argument("--force", action="store_true", help="overwrite KEY and KEY.pub")
    k.set_defaults(func=run_keygen)

    s = sub.add_parser(
        "sign",
        parents=parents,
        formatter_class=fmt,
        help="sign the provenance and SBOM of an OCI layout, a SIF or a bundle, or any file, as DSSE envelopes",
        description=textwrap.dedent(
            """\
            FILE is an OCI layout written by `envgen export` (its provenance and SBOM
            referrers get a DSSE signature referrer each; the image and index.json
            are untouched), a SIF (signature objects are added after the partition,
            linked to the provenance and SBOM objects; the partition is untouched),
            a bundle (its provenance and SBOM get a DSSE envelope each, or the new
            keys' signatures are added to the envelopes it has; every other member
            is kept as it is: signing an unsigned bundle gives the bundle
            `envgen archive --key KEY` writes, byte for byte), or any other file,
            e.g. the attestation of `envgen verify --attest` (its DSSE envelope is
            written to -o, by default FILE.dsse.json; payload type
            application/vnd.in-toto+json for an in-toto Statement).

            Signing is offline and deterministic (ed25519): signing again with the
            same key writes the same bytes. Check with `envgen verify --key KEY.pub FILE`.
            """
        ),
        epilog="examples:\n  envgen sign abide.oci --key release.key\n"
               "  envgen verify bundle.tar --attest rebuild.json && envgen sign rebuild.json --key me.key",
    )
    s.add_argument("file", metavar="FILE", help="an OCI layout directory, a SIF, a bundle, or a file to sign")
    s.add_argument("--key", required=True, action="append", metavar="KEY",
                   help="an ed25519 private key (envgen keygen, or OpenSSH); repeatable")
    s.add_argument("-o", "--output", metavar="OUT", help="for a plain file: the envelope (default FILE.dsse.json)")
    s.set_defaults(func=run_sign)


def run_keygen(args, ui) -> int:
    from ..signing import generate

    res = generate(args.key, force=args.force)

    def human(out):
        out.print(f"ed25519 key {res['keyid']}")
        out.print(f"  private: {res['private']} (keep it secret)")
        out.print(f"  public:  {res['public']}")

    ui.emit(res, human)
    return 0


def run_sign(args, ui) -> int:
    from ..signing import load_signer

    signers = [load_signer(k) for k in args.key]
    path = Path(args.file)
    if not path.exists():
        raise EnvgenError(f"{path}: no such file or directory")
    from ..archive import is_bundle

    if path.is_dir():
        res = sign_layout(path, signers)
    elif is_bundle(path):
        from ..archive.sign import sign_bundle

        with ui.status(f"signing {path}"):
            res = sign_bundle(path, signers)
    elif _is_sif(path):
        res = sign_sif(path, signers)
    else:
        res = sign_file(path, signers, Path(args.output) if args.output else None)

    def human(out):
        out.print(f"{path}: signed {', '.join(res['signed'])} with {len(signers)} key(s)"
                  + (f" -> {res['envelope']}" if res.get("envelope") else ""))

    ui.emit(res, human)
    return 0


def _is_sif(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(64)[0x20:0x2A] == b"SIF_MAGIC\0"


def sign_layout(layout: Path, signers) -> dict:
    from .. import attest
    from ..export.oci import find_referrers, image_manifest, read_blob, sign_payloads

    desc, _ = image_manifest(layout)
    subject = {"mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"]}
    payloads = []
    labels = []
    created = {}
    for ref in find_referrers(layout, desc["digest"]):
        m = ref["manifest"]
        at = m.get("artifactType")
        if at in (attest.MT_INTOTO, attest.MT_CYCLONEDX):
            try:
                payloads.append((read_blob(layout, m["layers"][0]["digest"]), at))
            except (OSError, ValueError, KeyError, IndexError, TypeError):
                raise EnvgenError(f"{layout}: the {at} referrer {ref['digest'][:19]}… is damaged; not signing it",
                                  hint="export the image again") from None
            labels.append("provenance" if at == attest.MT_INTOTO else "sbom")
            created = {k: v for k, v in m.get("annotations", {}).items() if k == "org.opencontainers.image.created"}
    if not payloads:
        raise EnvgenError(f"{layout}: the image has no provenance or SBOM referrer to sign",
                          hint="export it again with this envgen")
    refs = []
    for signer in signers:
        refs.extend(sign_payloads(layout / "blobs" / "sha256", subject, payloads, signer, created))
    return {"path": str(layout), "signed": sorted(labels), "referrers": refs}


def sign_sif(path: Path, signers) -> dict:
    from .. import attest
    from ..export import sif as S
    from ..fsutil import file_sha256

    info = S.read_sif(path)
    objects: list[tuple] = [(d.datatype, d.name, (path, d.offset, d.size), d.extra, d.link) for d in info.descriptors]
    signed = []
    labels = []
    for d in info.descriptors:
        if d.datatype == S.DT_SBOM:
            signed.append((d.id, info.read(d), attest.MT_CYCLONEDX))
            labels.append("sbom")
        elif d.datatype == S.DT_GENERICJSON and d.name == S.PROVENANCE_NAME:
            signed.append((d.id, info.read(d), attest.MT_INTOTO))
            labels.append("provenance")
    if not signed:
        raise EnvgenError(f"{path}: the SIF has no provenance or SBOM object to sign")
    if [d.id for d in info.descriptors] != list(range(1, len(info.descriptors) + 1)):
        raise EnvgenError(f"{path}: its object ids are not 1..N; envgen signs the SIFs it wrote")
    for signer in signers:
        objects.extend(S.signature_objects(signed, signer))
    S.write_sif(path, objects, info.created)
    return {"path": str(path), "signed": sorted(labels), "sha256": file_sha256(path)}


def sign_file(path: Path, signers, out: Path | None) -> dict:
    from .. import attest
    from ..fsutil import atomic_write
    from ..signing import sign

    if path.stat().st_size > MAX_PLAIN:
        raise EnvgenError(f"{path}: {path.stat().st_size} bytes is too big to carry inside an envelope",
                          hint="sign a statement about it instead (its provenance, or `envgen verify --attest`)")
    data = path.read_bytes()
    ptype = "application/octet-stream"
    try:
        doc = json.loads(data)
        if isinstance(doc, dict) and doc.get("_type") == attest.STATEMENT_TYPE:
            ptype = attest.MT_INTOTO
        elif isinstance(doc, dict) and doc.get("bomFormat") == "CycloneDX":
            ptype = attest.MT_CYCLONEDX
    except ValueError:
        pass
    out = out or Path(f"{path}.dsse.json")
    atomic_write(out, sign(data, ptype, list(signers)))
    return {"path": str(path), "signed": [ptype], "envelope": str(out)}
