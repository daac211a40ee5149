"""The one diff model: what changed between two closures, each change classified.

A change is ``{"source", "name", "change", "old", "new"}``, ``change`` one of
``added``, ``removed``, ``upgraded``, ``downgraded``, ``changed`` (versions
that differ yet compare equal) or ``rebuilt`` (same version, other hash).
:func:`classify` makes them from two inventories ``{name: (version, digests)}``
of one ``source`` (a version of None: the item has none, so ``old``/``new`` show
its digest).

:func:`diff_locks` compares what the environment runs (PyPI packages, the
Debian runtime); :func:`diff_build` what only its build uses: the source
builds (reason, backend, pinned build requirements), the build tools and the
Debian build packages. :mod:`envgen.closure` reads bundles and images into the
same inventories (their lock, local projects, image layers) for ``envgen diff``.
"""

from __future__ import annotations

from debian.debian_support import Version as DebVersion
from packaging.version import InvalidVersion, Version

from .pylock import Lock


def _cmp_py(a: str, b: str) -> int:
    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion:
        va, vb = a, b  # type: ignore[assignment]
    return (va > vb) - (va < vb)


def _cmp_deb(a: str, b: str) -> int:
    va, vb = DebVersion(a), DebVersion(b)
    return (va > vb) - (va < vb)


def _shown(entry: tuple) -> str | None:
    """What a change shows of an item: its version, else its (first) digest, shortened."""
    version, digests = entry
    if version is not None or not digests:
        return version
    d = digests if isinstance(digests, str) else digests[0]
    algo, _, hexd = d.rpartition(":")
    return f"{algo or 'sha256'}:{hexd[:12]}"


def _no_order(a: str, b: str) -> int:
    return 0


def classify(source: str, old: dict, new: dict, cmp=_no_order) -> list[dict]:
    """The changes from *old* to *new*, both ``{name: (version or None, (digest, …))}``, sorted by name.

    *cmp(new_version, old_version)* orders versions (<0, 0, >0).
    """
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            out.append({"source": source, "name": name, "change": "removed", "old": _shown(old[name]), "new": None})
        elif name not in old:
            out.append({"source": source, "name": name, "change": "added", "old": None, "new": _shown(new[name])})
        else:
            (ov, oh), (nv, nh) = old[name], new[name]
            if ov != nv and ov is not None and nv is not None:
                c = cmp(nv, ov)
                change = "upgraded" if c > 0 else "downgraded" if c < 0 else "changed"
                out.append({"source": source, "name": name, "change": change, "old": ov, "new": nv})
            elif oh != nh:
                out.append({"source": source, "name": name, "change": "rebuilt",
                            "old": _shown(old[name]), "new": _shown(new[name])})
    return out


def diff_locks(a: Lock, b: Lock) -> list[dict]:
    def py(lock: Lock) -> dict:
        # a package built from source has no wheel: its sdist (or its git commit) is what changes
        return {p.name: (p.version, tuple(sorted(w.sha256 for w in p.wheels))
                         or ((p.sdist.sha256,) if p.sdist is not None else ())
                         or ((f"git:{p.vcs.commit_id}",) if p.vcs is not None else ()))
                for p in lock.packages}

    def deb(lock: Lock) -> dict:
        return {d.name: (d.version, d.sha256) for d in lock.debian.packages if d.role == "runtime"}

    return classify("pypi", py(a), py(b), _cmp_py) + classify("debian", deb(a), deb(b), _cmp_deb)


def _source_build_text(b) -> str:
    pack = f"; source sha256:{b.source_sha256[:12]}" if b.source_sha256 else ""
    return f"{b.version or '-'} ({b.reason}; {b.backend}; {', '.join(b.requires) or 'no requirements'}{pack})"


def diff_build(a: Lock, b: Lock) -> list[dict]:
    """Build-time changes: ``source-build``, ``build-tool`` and ``debian-build`` entries."""
    out: list[dict] = []
    sa = {x.name: x for x in a.source_builds}
    sb = {x.name: x for x in b.source_builds}
    for name in sorted(set(sa) | set(sb)):
        old, new = sa.get(name), sb.get(name)
        if new is None:
            out.append({"source": "source-build", "name": name, "change": "removed",
                        "old": _source_build_text(old), "new": None})
        elif old is None:
            out.append({"source": "source-build", "name": name, "change": "added",
                        "old": None, "new": _source_build_text(new)})
        elif old != new:
            c = _cmp_py(new.version, old.version) if old.version and new.version else 0
            change = "upgraded" if c > 0 else "downgraded" if c < 0 else "changed"
            out.append({"source": "source-build", "name": name, "change": change,
                        "old": _source_build_text(old), "new": _source_build_text(new)})

    def tools(lock: Lock) -> dict:
        by_name: dict[str, list] = {}
        for p in lock.build_tools:
            by_name.setdefault(p.name, []).append(p)
        return {name: (", ".join(sorted((p.version or "" for p in ps), key=_version_sort)),
                       tuple(sorted(w.sha256 for p in ps for w in p.wheels)))
                for name, ps in by_name.items()}

    def deb(lock: Lock) -> dict:
        return {d.name: (d.version, d.sha256) for d in lock.debian.packages if d.role == "build"}

    def cmp_tools(x: str, y: str) -> int:
        return _cmp_py(x, y) if ", " not in x + y else 0

    return (out + classify("build-tool", tools(a), tools(b), cmp_tools)
            + classify("debian-build", deb(a), deb(b), _cmp_deb))


def _version_sort(v: str):
    try:
        return (0, Version(v), v)
    except InvalidVersion:
        return (1, v, v)
