"""envgen rerun ID"""

from __future__ import annotations

import textwrap


def register(sub, parents, fmt):
    p = sub.add_parser(
        "rerun",
        parents=parents,
        formatter_class=fmt,
        help="rerun a recorded run in the same env on the same inputs, and compare outputs",
        description=textwrap.dedent(
            """\
            Run a recorded command again, in the same environment (same tree digest)
            on the same inputs (checked by hash), with each writable bind pointed
            at a fresh directory, then compare the outputs file by file with the
            recorded ones: identical, differing (for CSV: which columns), missing,
            or new. Outputs the spec declares nondeterministic are reported apart
            and do not fail the comparison.

            Exit status 0 when the outputs are reproduced, 1 when they differ.
            """
        ),
        epilog="example:\n  envgen rerun 20261121-2350",
    )
    p.add_argument("run_id", metavar="ID")
    p.add_argument("--out", metavar="DIR", help="put the rerun's writable binds under DIR (default: a new temp dir)")
    p.set_defaults(func=run)


def run(args, ui) -> int:
    from ..run.rerun import rerun
    from ..snapshot.store import open_store

    store = open_store(args.store)
    result = rerun(store, args.run_id, args.out, ui)

    def human(out):
        for f in result["comparison"]["files"]:
            extra = ""
            if "csv" in f:
                extra = f"  columns: {', '.join(f['csv']['columns'])}"
            out.print(f"  {f['status']:34} {f['path']}{extra}")
        out.print(f"rerun {result['rerun']} of {result['original']}: {result['comparison']['verdict']}"
                  f"  (outputs in {result['out']})")

    ui.emit(result, human)
    return 0 if result["comparison"]["verdict"] == "identical" else 1
