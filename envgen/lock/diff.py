"""Differences between two locks, PyPI and Debian both."""

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


def _diff(source: str, old: dict, new: dict, cmp) -> list[dict]:
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            out.append({"source": source, "name": name, "change": "removed", "old": old[name][0], "new": None})
        elif name not in old:
            out.append({"source": source, "name": name, "change": "added", "old": None, "new": new[name][0]})
        else:
            (ov, oh), (nv, nh) = old[name], new[name]
            if ov != nv and ov is not None and nv is not None:
                c = cmp(nv, ov)
                change = "upgraded" if c > 0 else "downgraded" if c < 0 else "changed"
                out.append({"source": source, "name": name, "change": change, "old": ov, "new": nv})
            elif oh != nh:
                out.append({"source": source, "name": name, "change": "rebuilt", "old": ov, "new": nv})
    return out


def diff_locks(a: Lock, b: Lock) -> list[dict]:
    def py(lock: Lock) -> dict:
        return {p.name: (p.version, tuple(sorted(w.sha256 for w in p.wheels))) for p in lock.packages}

    def deb(lock: Lock) -> dict:
        return {d.name: (d.version, d.sha256) for d in lock.debian.packages if d.role == "runtime"}

    return _diff("pypi", py(a), py(b), _cmp_py) + _diff("debian", deb(a), deb(b), _cmp_deb)
