"""envgen update SPEC [PKG …]"""

from __future__ import annotations

import textwrap


def register(sub, parents, fmt):
    p = sub.add_parser(
        "update",
        parents=parents,
        formatter_class=fmt,
        help="move a spec's snapshot date (all of it, or some packages), re-lock, and show the difference",
        description=textwrap.dedent(
            """\
            Move SPEC's snapshot date to today (00:00:00Z) or to --date, re-lock, and
            print what changed between the old lock and the new one, PyPI and Debian,
            as `envgen diff` does. Debian changes that are security updates (a
            +debNuN/~debNuN version, or the -security archive) are marked [security].

            With PKG names, only those move on the PyPI side: every other PyPI package
            of the current lock is held at its locked version by the spec's [hold]
            table (a constraint: it adds no package), so only the named packages and
            the new dependencies they bring can change. A later `envgen update SPEC`
            without names releases every hold; deleting a line of [hold] releases one.
            The Debian runtime has one date and always moves with the spec.

            Every [variants.NAME] of the spec moves with it: its lock is made again at
            the new date too (its own packages are not held), and the update lists what
            moved in it beyond the default env's changes.

            The spec keeps its comments and layout. The new locks are made in a temporary
            directory first; only when all succeed are the spec and its locks replaced,
            each atomically. --dry-run prints the difference and writes nothing.
            """
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              envgen update specs/abide.toml --dry-run           # what today would change
              envgen update specs/abide.toml                     # move it all to today
              envgen update specs/abide.toml scikit-learn        # only scikit-learn moves
              envgen update specs/abide.toml --date 2025-09-01 --json | jq '.changes'
            """
        ),
    )
    p.add_argument("spec", metavar="SPEC", help="the spec file, e.g. specs/abide.toml")
    p.add_argument("packages", metavar="PKG", nargs="*",
                   help="move only these PyPI packages; hold the rest at their locked versions")
    p.add_argument("--date", metavar="D", help="the new snapshot date: YYYY-MM-DD or an RFC 3339 UTC time "
                                               "(default: today 00:00:00Z)")
    p.add_argument("--dry-run", action="store_true", help="print the difference; write neither spec nor lock")
    p.set_defaults(func=run)


def run(args, ui) -> int:
    from ..update import update
    from .diff import line
    from .lock import lock_store

    with ui.status(f"updating {args.spec}") as progress:
        r = update(args.spec, date=args.date, packages=args.packages, dry_run=args.dry_run, progress=progress,
                   store=lock_store(args))
    for w in r.warnings:
        ui.warn(w)
    data = {
        "spec": str(r.spec.path),
        "lock": str(r.spec.lock_path),
        "dry_run": not r.written,
        "written": r.written,
        "old_snapshot_date": r.old_date.iso,
        "new_snapshot_date": r.new_date.iso,
        "packages": r.named,
        "held": r.held,
        "released": r.released,
        "changes": r.changes,
        "build_changes": r.build_changes,
        "security_updates": sorted(c["name"] for c in r.changes + r.build_changes if c.get("security")),
        "warnings": r.warnings,
        "variants": r.variants,
    }

    def human(out):
        what = f"{', '.join(r.named)} (the other {len(r.held)} PyPI packages held)" if r.named else "the whole spec"
        out.print(f"{r.spec.path}: snapshot date {r.old_date.iso} -> {r.new_date.iso} for {what}")
        if r.released:
            out.print(f"released from [hold]: {', '.join(r.released)}")
        if not r.changes and not r.build_changes:
            out.print("no differences")
        for c in r.changes:
            line(out, c)
        if r.build_changes:
            out.print("build time (source builds, build tools, Debian build packages):")
        for c in r.build_changes:
            line(out, c, "  ")
        for name, v in r.variants.items():
            if v["changes"] is None:
                out.print(f"variant {name}: locked for the first time ({v['lock']})")
                continue
            own = [c for c in v["changes"] if c not in r.changes]  # what the default env's list does not say
            out.print(f"variant {name}: " + (f"{len(own)} more difference{'s' * (len(own) != 1)}" if own
                                        else "no other differences"))
            for c in own:
                line(out, c, "  ")
        if data["security_updates"]:
            out.print(f"{len(data['security_updates'])} Debian security updates")
        locks = ", ".join([str(r.spec.lock_path), *(v["lock"] for v in r.variants.values())])
        out.print(f"{r.spec.path} and {locks} updated" if r.written
                  else f"dry run: the spec and its lock{'s' if r.variants else ''} are unchanged")

    ui.emit(data, human)
    return 0
