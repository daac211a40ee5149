"""Determinism under variation on a real env (default: the ABIDE spec), as a table.

    .venv/bin/python bench/variation.py [--spec specs/abide.toml] [--store DIR] [--only umask-077,one-cpu]
                                        [--builders embedded,nix] [--no-exports] [--json OUT] [--keep DIR]

The same harness as tests/test_variation.py (envgen/variation.py): the spec's
snapshot is built and exported again under each variation (umask 077/002,
another TZ and locale, one core, a store path with spaces and non-ASCII
characters, another hostname, another user, reversed directory order through
disorderfs), each from a scratch store whose objects are hard-linked from
--store, and compared with a baseline build: tree digest and full listing,
OCI index digest and layer diff_ids, SIF and sqsh sha256, bundle sha256.
Every difference names the differing files.

Needs the spec locked and snapshotted in --store (`envgen snapshot SPEC`);
nothing is downloaded.  On the ABIDE env each variation takes minutes
(build, three exports, one bundle); --only and --no-exports shorten it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from envgen.variation import EXPORTS, VARIATIONS, Harness, table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="variations:\n" + "\n".join(f"  {v.name:<11} {v.what}"
                                                                   for v in VARIATIONS.values()))
    ap.add_argument("--spec", default=str(REPO / "specs" / "abide.toml"), help="the spec (default: specs/abide.toml)")
    ap.add_argument("--project", default=None,
                    help="the directory holding the spec's dir and its local projects (default: the spec's "
                         "directory's parent)")
    ap.add_argument("--store", default=None, help="a store holding the spec's snapshot (default: envgen's)")
    ap.add_argument("--only", default="", help="comma-separated variations (default: all)")
    ap.add_argument("--builders", default="embedded", help="comma-separated: embedded, nix (default: embedded)")
    ap.add_argument("--no-exports", action="store_true", help="compare trees only (no OCI/SIF/sqsh, no bundle)")
    ap.add_argument("--json", metavar="OUT", help="also write the outcomes as JSON")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep every variation's store and outputs")
    args = ap.parse_args(argv)

    from envgen.paths import store_dir

    spec = Path(args.spec).resolve()
    project = Path(args.project).resolve() if args.project else spec.parent.parent
    names = [n for n in args.only.split(",") if n] or list(VARIATIONS)
    unknown = [n for n in names if n not in VARIATIONS]
    if unknown:
        ap.error(f"unknown variations: {', '.join(unknown)}")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="envgen-variation-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    h = Harness(project, str(spec.relative_to(project)), store_dir(args.store), work,
                builders=tuple(args.builders.split(",")), exports=() if args.no_exports else EXPORTS,
                bundle=not args.no_exports, keep=bool(args.keep), note=lambda m: print(m, file=sys.stderr, flush=True))
    try:
        outcomes = h.run(names)
    finally:
        if not args.keep:
            from envgen.fsutil import remove_tree

            remove_tree(work)
    print(table(outcomes))
    if args.json:
        Path(args.json).write_text(json.dumps([o.summary() for o in outcomes], indent=1, sort_keys=True) + "\n")
    return 0 if all(o.identical or o.skipped or o.variation == "baseline" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
