"""Which wheel of a package the target platform installs.

The lock keeps, per package, only the wheel that an installer on the target
(the spec's CPython on the OS base's glibc) would choose: the compatible one
with the most specific tag, in the order ``packaging.tags`` ranks them.
"""

from __future__ import annotations

from functools import cache

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename


def _linux_platforms(machine: str, glibc: tuple[int, int]) -> list[str]:
    major, minor = glibc
    plats: list[str] = []
    legacy = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
    for m in range(minor, 4, -1):
        plats.append(f"manylinux_{major}_{m}_{machine}")
        if (major, m) in legacy:
            plats.append(f"{legacy[(major, m)]}_{machine}")
    plats.append(f"linux_{machine}")
    return plats


@cache
def supported_tags(python: str, machine: str, glibc: tuple[int, int]) -> tuple[Tag, ...]:
    """Tags a CPython *python* on a glibc-*glibc* Linux *machine* accepts, best first."""
    ver = tuple(int(x) for x in python.split("."))
    plats = _linux_platforms(machine, glibc)
    tags = list(cpython_tags(ver, platforms=plats)) + list(compatible_tags(ver, "cp" + "".join(map(str, ver)), plats))
    return tuple(tags)


_RANKS: dict[int, tuple[tuple[Tag, ...], dict[Tag, int]]] = {}


def _ranks(tags: tuple[Tag, ...]) -> dict[Tag, int]:
    """Each tag's rank, computed once per tag tuple (found by identity: hashing ~1000 tags per wheel is not free)."""
    hit = _RANKS.get(id(tags))
    if hit is None or hit[0] is not tags:
        hit = _RANKS[id(tags)] = (tags, {t: i for i, t in enumerate(tags)})
    return hit[1]


def wheel_rank(filename: str, tags: tuple[Tag, ...]) -> int | None:
    """The rank of the best tag *filename* offers (lower is better), or None."""
    try:
        _, _, _, wtags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    ranks = _ranks(tags)
    best = [ranks[t] for t in wtags if t in ranks]
    return min(best) if best else None


def best_wheel(filenames: list[str], tags: tuple[Tag, ...]) -> str | None:
    ranked = [(r, f) for f in filenames if (r := wheel_rank(f, tags)) is not None]
    return min(ranked)[1] if ranked else None
