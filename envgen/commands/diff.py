"""envgen diff A B: two locks, bundles or images (OCI layouts, SIF files), closure-wide"""

from __future__ import annotations

import textwrap

from ..closure import diff_closures, read_closure


def register(sub, parents, fmt):
    p = sub.add_parser(
        "diff",
        parents=parents,
        formatter_class=fmt,
        help="what was added, removed, upgraded, downgraded or rebuilt between two locks, bundles or images",
        description=textwrap.dedent(
            """\
            Compare two environments' whole closures. A and B may each be a spec or a
            lock, a bundle (`envgen archive`), an OCI layout or a SIF file (`envgen
            export`); envgen reads each for what it is, not by its name, and the two
            may be of different kinds (a lock against the image made from it).

            Compared: what the environment runs (PyPI packages by version and wheel or
            sdist hash, the Debian runtime packages; for bundles and images also the
            local projects, by their source pack's sha256); what only its build uses,
            in its own section (source builds with their pinned build requirements,
            build tools, Debian build packages; --json: build_changes); and for two
            images, their layers by name (the OCI layers envgen names debian,
            numpy-scipy, python, project, ...; a SIF's one squashfs partition;
            --json: layer_changes).

            Each change is added, removed, upgraded, downgraded, or rebuilt: the same
            version with other bytes (for a layer or a local project, which have no
            version: other bytes).

            Exit status: 0 if A and B pin the same artifacts, 1 if they differ.
            """
        ),
        epilog="examples:\n"
               "  envgen diff old/pylock.abide.toml specs/pylock.abide.toml\n"
               "  envgen diff abide-2025-05.tar abide-2025-11.tar     # two bundles\n"
               "  envgen diff out/oci-old out/oci-new --json          # two OCI layouts: packages and layers\n"
               "  envgen diff specs/abide.toml abide.sif               # a spec's lock against a SIF image",
    )
    p.add_argument("a", metavar="A", help="a spec, a lock, a bundle, an OCI layout or a SIF file")
    p.add_argument("b", metavar="B", help="the same, to compare A with")
    p.set_defaults(func=run)


SECTIONS = (
    ("changes", "runtime (PyPI, Debian, local projects):"),
    ("build_changes", "build time (source builds, build tools, Debian build packages):"),
    ("layer_changes", "image layers:"),
)


def run(args, ui) -> int:
    a = read_closure(args.a, ui)
    b = read_closure(args.b, ui)
    data = {"a": args.a, "b": args.b, "kinds": {"a": a.kind, "b": b.kind},
            "digests": {"a": a.digest, "b": b.digest}, **diff_closures(a, b)}
    differ = any(data[key] for key, _ in SECTIONS)

    def human(out):
        if not differ:
            out.print("no differences")
        for key, title in SECTIONS:
            if data[key]:
                out.print(title)
            for c in data[key]:
                line(out, c, "  ")

    ui.emit(data, human)
    return 1 if differ else 0


def line(out, c: dict, indent: str = "") -> None:
    """One change of :mod:`envgen.lock.diff` as a line (``envgen update`` prints them alike)."""
    mark = " [security]" if c.get("security") else ""
    if c["change"] == "added":
        out.print(f"{indent}+ {c['source']:6} {c['name']} {c['new']}{mark}")
    elif c["change"] == "removed":
        out.print(f"{indent}- {c['source']:6} {c['name']} {c['old']}")
    else:
        out.print(f"{indent}~ {c['source']:6} {c['name']} {c['old']} -> {c['new']} ({c['change']}){mark}")
