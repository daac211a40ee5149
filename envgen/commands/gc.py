"""envgen gc"""

from __future__ import annotations

import textwrap

from ..snapshot.store import open_store


def register(sub, parents, fmt):
    p = sub.add_parser(
        "gc",
        parents=parents,
        formatter_class=fmt,
        help="remove store objects that no snapshot root references",
        description=textwrap.dedent(
            """\
            Delete every object in the store that no root (roots/*.json, written by
            snapshot and restore) lists, and report the space freed. Takes the store's
            exclusive lock, so it waits for running snapshots. Unknown top-level
            entries of the store are left alone. Use `envgen store forget ID` to drop
            a root first.
            """
        ),
        epilog="example:\n  envgen gc --dry-run\n  envgen gc --store /tmp/store --json",
    )
    p.add_argument("-n", "--dry-run", action="store_true", help="report what would be removed, remove nothing")
    p.set_defaults(func=run)


def run(args, ui) -> int:
    store = open_store(args.store)
    res = store.gc(dry_run=args.dry_run)
    res["store"] = str(store.root)

    def human(out):
        verb = "would remove" if args.dry_run else "removed"
        out.print(f"{verb} {res['removed']} objects, {res['freed_bytes'] / 1e6:.1f} MB; "
                  f"kept {res['kept']} objects referenced by {res['roots']} roots")

    ui.emit(res, human)
    return 0
