"""envgen graph SPEC / envgen why SPEC PACKAGE"""

from __future__ import annotations

import textwrap

from ..lock import load_lock_for
from ..lock.graph import BUILD, build_graph, edge_kind, label, path_text, tree, why
from . import variant_option


def register(sub, parents, fmt):
    p = sub.add_parser(
        "graph",
        parents=parents,
        formatter_class=fmt,
        help="print the dependency tree of a spec's lock",
        description=textwrap.dedent(
            """\
            Print the environment's dependency tree, from the lock: the spec's
            requirements and local projects, what each pulls in, and the Debian
            runtime under the interpreter. A package met a second time is marked
            (*) and not expanded again. Build-time edges (a source build's pinned
            build requirements and compilers, the builders' own tools) are marked
            "═ (build)". --json gives the nodes, the edges as [from, to, kind]
            (kind: runtime or build) and the tree.
            """
        ),
        epilog="example:\n  envgen graph specs/abide.toml\n  envgen graph specs/pylock.abide.toml --json",
    )
    p.add_argument("spec", metavar="SPEC", help="a spec (its lock is read) or a pylock.*.toml")
    variant_option(p)
    p.set_defaults(func=run_graph)

    w = sub.add_parser(
        "why",
        parents=parents,
        formatter_class=fmt,
        help="show every path from a root requirement to a package",
        description="Show every dependency path from the environment's roots to PACKAGE\n"
        "(a Python distribution name, a build tool or a Debian package name).\n"
        "A build-time edge prints as =build=> (--json: edges, build_time).",
        epilog="example:\n  envgen why specs/abide.toml threadpoolctl\n  envgen why specs/abide.toml libssl3",
    )
    w.add_argument("spec", metavar="SPEC", help="a spec (its lock is read) or a pylock.*.toml")
    variant_option(w)
    w.add_argument("package", metavar="PACKAGE")
    w.set_defaults(func=run_why)


def run_graph(args, ui) -> int:
    _, lock = load_lock_for(args.spec, ui, args.variant)
    g = build_graph(lock)
    rows = tree(g, f"env:{lock.name}")
    data = {
        "name": lock.name,
        "nodes": [{"id": n, **{k: v for k, v in g.nodes[n].items()}} for n in sorted(g.nodes)],
        "edges": sorted([a, b, edge_kind(g, a, b)] for a, b in g.edges),
        "tree": [{"depth": d, "id": n, "repeated": r, "edge": k} for d, n, r, k in rows],
    }

    def human(out):
        for depth, node, repeated, kind in rows:
            prefix = "  " * depth + (("└═ (build) " if kind == BUILD else "└─ ") if depth else "")
            out.print(prefix + label(g, node) + (" (*)" if repeated and list(g.successors(node)) else ""))
        nbuild = sum(1 for a, b in g.edges if edge_kind(g, a, b) == BUILD)
        out.print(f"{g.number_of_nodes() - 1} packages, {g.number_of_edges()} edges ({nbuild} build-time); "
                  "(*) = expanded above, ═ (build) = needed only to build")

    ui.emit(data, human)
    return 0


def run_why(args, ui) -> int:
    _, lock = load_lock_for(args.spec, ui, args.variant)
    g = build_graph(lock)
    paths = why(g, lock.name, args.package)
    data = {"package": args.package, "paths": [[g.nodes[n]["name"] for n in p] for p in paths],
            "labels": [[label(g, n) for n in p] for p in paths],
            "edges": [[edge_kind(g, a, b) for a, b in zip(p, p[1:], strict=False)] for p in paths],
            "build_time": [any(edge_kind(g, a, b) == BUILD for a, b in zip(p, p[1:], strict=False)) for p in paths]}

    def human(out):
        if not paths:
            out.print(f"{args.package} is in the lock but nothing in the environment requires it")
        for p in paths:
            out.print(path_text(g, p))

    ui.emit(data, human)
    return 0 if paths else 1
