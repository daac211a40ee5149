"""The dependency graph of a lock, as a networkx DiGraph.

Nodes are ``env:<name>`` (the root), ``py:<name>`` for Python packages,
``deb:<name>`` for Debian packages and ``build:<name>==<version>`` for build
tools (one node per pinned version).  The env node points at the spec's
requirements, its local projects and the Debian runtime roots.

Every edge has a ``kind``: ``runtime`` (a dependency, as installed) or
``build`` (needed only to build: a source build's pinned build requirements
and, for a compiled one, the Debian build roots; the env's base build tools).
"""

from __future__ import annotations

import difflib

import networkx as nx
from packaging.utils import canonicalize_name

from ..errors import EnvgenError
from .pylock import Lock

RUNTIME = "runtime"
BUILD = "build"


def tool_node(name: str, version: str | None) -> str:
    return f"build:{name}=={version or ''}"


def build_graph(lock: Lock) -> nx.DiGraph:
    g: nx.DiGraph[str] = nx.DiGraph()
    root = f"env:{lock.name}"
    g.add_node(root, kind="env", name=lock.name, version=None)
    for p in lock.packages:
        g.add_node(f"py:{p.name}", kind="local" if p.is_local else "git" if p.vcs else "pypi", name=p.name,
                   version=p.version)
    for d in lock.debian.packages:
        g.add_node(f"deb:{d.name}", kind="deb" if d.role == "runtime" else "deb-build", name=d.name,
                   version=d.version)
    for t in lock.build_tools:
        g.add_node(tool_node(t.name, t.version), kind="build-tool", name=t.name, version=t.version)
    for r in lock.roots:
        g.add_edge(root, f"py:{r}", kind=RUNTIME)
    for r in lock.debian.roots:
        g.add_edge(root, f"deb:{r}", kind=RUNTIME)
    for p in lock.packages:
        for dep in p.dependencies:
            g.add_edge(f"py:{p.name}", f"py:{dep}", kind=RUNTIME)
    for d in lock.debian.packages:
        for dep in d.depends:
            g.add_edge(f"deb:{d.name}", f"deb:{dep}", kind=RUNTIME)
    # build edges: what each source build needs, and the tools the builders themselves use
    from .debian import BUILD_ROOTS

    compile_roots = [r for r in lock.debian.build_roots if r not in BUILD_ROOTS]
    used: set[str] = set()
    for b in lock.source_builds:
        src = f"py:{b.name}"
        for name, version in b.pins():
            g.add_edge(src, tool_node(name, version), kind=BUILD)
            used.add(tool_node(name, version))
        if b.reason != "local":
            for r in compile_roots:
                if f"deb:{r}" in g:
                    g.add_edge(src, f"deb:{r}", kind=BUILD)
    for t in lock.build_tools:
        if tool_node(t.name, t.version) not in used:
            g.add_edge(root, tool_node(t.name, t.version), kind=BUILD)
    for r in lock.debian.build_roots:
        if r in BUILD_ROOTS and f"deb:{r}" in g:
            g.add_edge(root, f"deb:{r}", kind=BUILD)
    # Debian build packages nothing points at stay out of the graph
    for n in [n for n in g if g.nodes[n].get("kind") == "deb-build" and g.in_degree(n) == 0]:
        g.remove_node(n)
    return g


def edge_kind(g: nx.DiGraph, a: str, b: str) -> str:
    return g.edges[a, b].get("kind", RUNTIME)


def label(g: nx.DiGraph, node: str) -> str:
    a = g.nodes[node]
    kind = a.get("kind")
    version = a.get("version")
    text = a["name"] + (f" {version}" if version else "")
    if kind == "deb":
        text += " [deb]"
    elif kind == "deb-build":
        text += " [deb, build]"
    elif kind == "build-tool":
        text += " [build tool]"
    elif kind == "local":
        text += " [local]"
    elif kind == "git":
        text += " [git]"
    elif kind == "env":
        text = f"{a['name']} (env)"
    return text


def arrow(kind: str) -> str:
    """How a path prints an edge: ``->`` at run time, ``=build=>`` at build time."""
    return " =build=> " if kind == BUILD else " -> "


def path_text(g: nx.DiGraph, path: list[str]) -> str:
    out = label(g, path[0])
    for a, b in zip(path, path[1:], strict=False):
        out += arrow(edge_kind(g, a, b)) + label(g, b)
    return out


def tree(g: nx.DiGraph, root: str) -> list[tuple[int, str, bool, str]]:
    """Depth-first rows (depth, node, repeated, kind of the edge from its parent): a repeated node is not expanded.

    Runtime edges come first, then build edges; Python before Debian within each.
    """
    rows: list[tuple[int, str, bool, str]] = []
    seen: set[str] = set()

    def order(parent: str, n: str) -> tuple:
        return (edge_kind(g, parent, n) == BUILD, not n.startswith("py:"), n)

    def visit(node: str, depth: int, kind: str) -> None:
        repeated = node in seen
        rows.append((depth, node, repeated, kind))
        if repeated:
            return
        seen.add(node)
        for child in sorted(g.successors(node), key=lambda n: order(node, n)):
            visit(child, depth + 1, edge_kind(g, node, child))

    visit(root, 0, RUNTIME)
    return rows


def find_nodes(g: nx.DiGraph, name: str) -> list[str]:
    """The nodes named *name*: the Python package, the Debian package, each pinned version of a build tool."""
    cname = canonicalize_name(name)
    found = [c for c in (f"py:{cname}", f"deb:{name}") if c in g]
    found += sorted(n for n in g if n.startswith(f"build:{cname}=="))
    if found:
        return found
    names = sorted({g.nodes[n]["name"] for n in g if g.nodes[n].get("kind") != "env"})
    close = difflib.get_close_matches(name, names, n=3)
    raise EnvgenError(
        f"{name!r} is not in the environment",
        hint=f"did you mean {', '.join(close)}?" if close else "`envgen graph SPEC` lists every package",
    )


def find_node(g: nx.DiGraph, name: str) -> str:
    return find_nodes(g, name)[0]


def why(g: nx.DiGraph, lock_name: str, target: str) -> list[list[str]]:
    """Every simple path from the env to *target*, through runtime and build edges (see :func:`edge_kind`)."""
    root = f"env:{lock_name}"
    paths: list[list[str]] = []
    for node in find_nodes(g, target):
        if node == root:
            continue
        for p in nx.all_simple_paths(g, root, node):
            if p not in paths:
                paths.append(p)
    return sorted(paths, key=lambda p: (len(p), p))
