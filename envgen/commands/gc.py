"""envgen gc"""

from __future__ import annotations

import textwrap

from ..snapshot.store import open_store


def register(sub, parents, fmt):
    p = sub.add_parser(
        "gc",
        parents=parents,
        formatter_class=fmt,
        help="remove store objects that no snapshot root references, and install units no tree uses",
        description=textwrap.dedent(
            """\
            Delete every object in the store that no root (roots/*.json, written by
            snapshot and restore) lists, and every install unit (units/KEY: a package
            installed once, hard-linked into the trees built from it) that no built
            tree (trees/KEY/meta.json) lists, and report the space freed. Takes the
            store's exclusive lock, so it waits for running snapshots and builds.
            Unknown top-level entries of the store are left alone. Use `envgen store
            forget ID` to drop a root first; remove a tree directory to drop a tree.
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
        out.print(f"{verb} {res['removed']} objects and {res['units_removed']} install units, "
                  f"{res['freed_bytes'] / 1e6:.1f} MB; kept {res['kept']} objects referenced by {res['roots']} "
                  f"roots and {res['units_kept']} units used by trees")

    ui.emit(res, human)
    return 0
