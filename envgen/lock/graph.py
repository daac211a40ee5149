"""The dependency graph of a lock, as a networkx DiGraph.

Nodes are ``env:<name>`` (the root), ``py:<name>`` for Python packages and
``deb:<name>`` for Debian packages.  The env node points at the spec's
requirements, its local projects and the Debian runtime roots.
"""

from __future__ import annotations

import difflib

import networkx as nx
from packaging.utils import canonicalize_name

from ..errors import EnvgenError
from .pylock import Lock


def build_graph(lock: Lock) -> nx.DiGraph:
    g: nx.DiGraph[str] = nx.DiGraph()
    root = f"env:{lock.name}"
    g.add_node(root, kind="env", name=lock.name, version=None)
    for p in lock.packages:
        g.add_node(f"py:{p.name}", kind="local" if p.is_local else "pypi", name=p.name, version=p.version)
    for d in lock.debian.packages:
        if d.role == "runtime":
            g.add_node(f"deb:{d.name}", kind="deb", name=d.name, version=d.version)
    for r in lock.roots:
        g.add_edge(root, f"py:{r}")
    for r in lock.debian.roots:
        g.add_edge(root, f"deb:{r}")
    for p in lock.packages:
        for dep in p.dependencies:
            g.add_edge(f"py:{p.name}", f"py:{dep}")
    for d in lock.debian.packages:
        if d.role == "runtime":
            for dep in d.depends:
                g.add_edge(f"deb:{d.name}", f"deb:{dep}")
    return g


def label(g: nx.DiGraph, node: str) -> str:
    a = g.nodes[node]
    kind = a.get("kind")
    version = a.get("version")
    text = a["name"] + (f" {version}" if version else "")
    if kind == "deb":
        text += " [deb]"
    elif kind == "local":
        text += " [local]"
    elif kind == "env":
        text = f"{a['name']} (env)"
    return text


def tree(g: nx.DiGraph, root: str) -> list[tuple[int, str, bool]]:
    """Depth-first rows (depth, node, repeated): a repeated node is not expanded again."""
    rows: list[tuple[int, str, bool]] = []
    seen: set[str] = set()

    def visit(node: str, depth: int) -> None:
        repeated = node in seen
        rows.append((depth, node, repeated))
        if repeated:
            return
        seen.add(node)
        for child in sorted(g.successors(node), key=lambda n: (not n.startswith("py:"), n)):
            visit(child, depth + 1)

    visit(root, 0)
    return rows


def find_node(g: nx.DiGraph, name: str) -> str:
    candidates = [f"py:{canonicalize_name(name)}", f"deb:{name}"]
    for c in candidates:
        if c in g:
            return c
    names = sorted({g.nodes[n]["name"] for n in g if g.nodes[n].get("kind") != "env"})
    close = difflib.get_close_matches(name, names, n=3)
    raise EnvgenError(
        f"{name!r} is not in the environment",
        hint=f"did you mean {', '.join(close)}?" if close else "`envgen graph SPEC` lists every package",
    )


def why(g: nx.DiGraph, lock_name: str, target: str) -> list[list[str]]:
    root = f"env:{lock_name}"
    node = find_node(g, target)
    paths = [p for p in nx.all_simple_paths(g, root, node)] if node != root else []
    if g.has_edge(root, node) and [root, node] not in paths:
        paths.append([root, node])
    return sorted(paths, key=lambda p: (len(p), p))
