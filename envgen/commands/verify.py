"""envgen verify BUNDLE"""

from __future__ import annotations

import textwrap

from ..errors import EnvgenError
from ..fsutil import atomic_write


def register(sub, parents, fmt):
    p = sub.add_parser(
        "verify",
        parents=parents,
        formatter_class=fmt,
        help="artifact evaluation of a bundle: Available, Functional, Reproduced",
        description=textwrap.dedent(
            """\
            From the bundle alone and an empty store (a temporary one): restore and
            check every hash (Available); rebuild the env offline and compare its tree
            digest with the bundle's, then run each recorded run (Functional); compare
            the reruns' outputs with the recorded ones under the declared
            nondeterministic files and columns (Reproduced). Prints a verdict per ACM
            badge, each backed by the checks that passed.

            Exit status 0 when the claimed level holds (--claim; default: reproduced
            if the bundle carries runs, else functional), 1 when it does not, 2 for
            an unusable bundle (or, with --key, a signature that does not hold).
            Run it with the network cut to prove the point: `unshare -n envgen
            verify BUNDLE` (as root) — the report says whether the network was cut.

            --key PUB (an ed25519 public key: `envgen keygen`'s KEY.pub, or an
            `ssh-ed25519 …` line; repeatable) first checks the DSSE envelopes the
            target carries: every provenance and SBOM must be signed by each key
            and unchanged since. TARGET may then also be an OCI layout (its referrers),
            a SIF (its signature objects) or a DSSE envelope file: those are only
            checked, not rebuilt. A signature that does not hold is one line and
            exit status 2, before anything is rebuilt.

            --attest FILE writes an in-toto Statement of this verification (what
            was rebuilt from which bundle, the tree digest it gave, each check and
            the verdict; predicate type urn:envgen:predicate:rebuild:v1), which
            `envgen sign FILE --key KEY` signs: an independent rebuilder's claim.
            """
        ),
        epilog="examples:\n  envgen archive specs/abide.toml --with-runs -o abide.tar.zst\n"
        "  unshare -n envgen verify abide.tar.zst --html report.html\n"
        "  envgen verify --key release.key.pub abide.oci        # the signed provenance of an export\n"
        "  envgen verify abide.tar.zst --attest rebuild.json && envgen sign rebuild.json --key me.key",
    )
    p.add_argument("bundle", metavar="TARGET", help="a bundle (or, with --key, an OCI layout, a SIF, a DSSE envelope)")
    p.add_argument("--claim", choices=["available", "functional", "reproduced"], default=None,
                   help="the level the paper claims (sets the exit status)")
    p.add_argument("--builder", choices=["embedded", "nix"], default="embedded", help="rebuild with this builder")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    p.add_argument("--keep", metavar="DIR", help="keep the temporary store and work tree in DIR")
    p.add_argument("--key", action="append", default=[], metavar="PUB",
                   help="check the signatures with this ed25519 public key (repeatable)")
    p.add_argument("--attest", metavar="FILE", help="write an in-toto attestation of this rebuild and its verdict")
    p.set_defaults(func=run)


def run(args, ui) -> int:
    from pathlib import Path

    from ..archive import is_bundle
    from ..signing import load_public
    from ..verify import LEVELS, rebuild_attestation, to_html, verify_bundle

    keys = [load_public(k) for k in args.key]
    target = Path(args.bundle)
    if keys and (target.is_dir() or (target.is_file() and not is_bundle(target))):
        return _check_signatures(ui, target, keys)
    with ui.status(f"verifying {args.bundle}") as update:
        result = verify_bundle(args.bundle, builder=args.builder, keep=args.keep, note=update, keys=keys)
    claim = args.claim or ("reproduced" if result.get("runs") else "functional")
    level = result["level"]
    holds = level is not None and LEVELS.index(level) >= LEVELS.index(claim)
    result["claim"] = claim
    result["claim_holds"] = holds
    if args.html:
        atomic_write(args.html, to_html(result))
    if args.attest:
        from .. import attest
        from ..fsutil import file_sha256

        atomic_write(args.attest, attest.to_bytes(rebuild_attestation(result, file_sha256(args.bundle))))
        result["attestation"] = args.attest

    def human(out):
        for sig in result.get("signatures", []):
            out.print(f"signed      ok  {', '.join(sig['signed'])} by key {sig['keyid'][:16]}…")
        for lv in LEVELS:
            mine = [c for c in result["checks"] if c["level"] == lv]
            mark = "PASS" if result["badges"][lv] else "FAIL" if mine else "----"
            out.print(f"{lv.title():11} {mark}")
            for c in mine:
                out.print(f"    {'ok ' if c['ok'] else 'NO '} {c['check']}: {c['detail']}")
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in result["stages_s"].items())
        verdict = f"claimed: {claim.title()}: {'holds' if holds else 'does NOT hold'}"
        out.print(f"verdict: {(level or 'none').title()} ({verdict})"
                  f"; network {'cut' if result['network_cut'] else 'NOT cut'}; {stages}")

    ui.emit(result, human)
    if result["level"] is None and not result["checks"]:
        raise EnvgenError(f"{args.bundle}: nothing could be verified")
    return 0 if holds else 1


def _check_signatures(ui, target, keys) -> int:
    """Only the signatures of an OCI layout, a SIF or an envelope: exit 0, or SignatureError (exit 2)."""
    from ..signing import check_artifact

    results = [check_artifact(target, k) for k in keys]
    doc = {"target": str(target), "signatures": results, "ok": True}

    def human(out):
        for r in results:
            out.print(f"{target}: {r['kind']}: {', '.join(r['signed'])} signed by key {r['keyid'][:16]}… "
                      f"({r['envelopes']} envelope(s) verified)" + (f"; subject {r['subject']}" if "subject" in r
                                                                  else ""))

    ui.emit(doc, human)
    return 0
