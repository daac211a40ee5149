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
            an unusable bundle. Run it with the network cut to prove the point:
            `unshare -n envgen verify BUNDLE` (as root) — the report says whether the
            network was cut.
            """
        ),
        epilog="examples:\n  envgen archive specs/abide.toml --with-runs -o abide.tar.zst\n"
        "  unshare -n envgen verify abide.tar.zst --html report.html",
    )
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("--claim", choices=["available", "functional", "reproduced"], default=None,
                   help="the level the paper claims (sets the exit status)")
    p.add_argument("--builder", choices=["embedded", "nix"], default="embedded", help="rebuild with this builder")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    p.add_argument("--keep", metavar="DIR", help="keep the temporary store and work tree in DIR")
    p.set_defaults(func=run)


def run(args, ui) -> int:
    from ..verify import LEVELS, to_html, verify_bundle

    with ui.status(f"verifying {args.bundle}") as update:
        result = verify_bundle(args.bundle, builder=args.builder, keep=args.keep, note=update)
    claim = args.claim or ("reproduced" if result.get("runs") else "functional")
    level = result["level"]
    holds = level is not None and LEVELS.index(level) >= LEVELS.index(claim)
    result["claim"] = claim
    result["claim_holds"] = holds
    if args.html:
        atomic_write(args.html, to_html(result))

    def human(out):
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
