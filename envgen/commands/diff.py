"""envgen diff LOCK_A LOCK_B"""

from __future__ import annotations

from ..lock import load_lock_for
from ..lock.diff import diff_build, diff_locks


def register(sub, parents, fmt):
    p = sub.add_parser(
        "diff",
        parents=parents,
        formatter_class=fmt,
        help="what was added, removed, upgraded or downgraded between two locks",
        description="Compare two locks (or the locks of two specs), PyPI and Debian both.\n"
        "A package whose version is unchanged but whose artifact hash differs is\n"
        "reported as 'rebuilt': the bytes changed under the same version.\n"
        "Build-time changes (source builds, their pinned build requirements, build\n"
        "tools, Debian build packages) are listed in their own section (--json:\n"
        "build_changes).\n"
        "Exit status: 0 if the locks pin the same artifacts, 1 if they differ.",
        epilog="example:\n  envgen diff old/pylock.abide.toml specs/pylock.abide.toml",
    )
    p.add_argument("lock_a", metavar="LOCK_A")
    p.add_argument("lock_b", metavar="LOCK_B")
    p.set_defaults(func=run)


def run(args, ui) -> int:
    _, a = load_lock_for(args.lock_a, ui)
    _, b = load_lock_for(args.lock_b, ui)
    changes = diff_locks(a, b)
    build = diff_build(a, b)
    data = {"a": args.lock_a, "b": args.lock_b, "changes": changes, "build_changes": build}

    def human(out):
        if not changes and not build:
            out.print("no differences")
        for c in changes:
            line(out, c)
        if build:
            out.print("build time (source builds, build tools, Debian build packages):")
        for c in build:
            line(out, c, "  ")

    ui.emit(data, human)
    return 1 if changes or build else 0


def line(out, c: dict, indent: str = "") -> None:
    """One change of :func:`~envgen.lock.diff.diff_locks` as a line (``envgen update`` prints them alike)."""
    mark = " [security]" if c.get("security") else ""
    if c["change"] == "added":
        out.print(f"{indent}+ {c['source']:6} {c['name']} {c['new']}{mark}")
    elif c["change"] == "removed":
        out.print(f"{indent}- {c['source']:6} {c['name']} {c['old']}")
    else:
        out.print(f"{indent}~ {c['source']:6} {c['name']} {c['old']} -> {c['new']} ({c['change']}){mark}")
