"""Parameter grids: ``--param name=0..9``, ``--param name=a,b``, expanded in order."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from ..errors import EnvgenError

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
RANGE_RE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


@dataclass(frozen=True)
class Param:
    name: str
    values: tuple[str, ...]


def parse_param(text: str) -> Param:
    """``name=0..3`` (inclusive integer range), ``name=a,b,c`` (a list, kept in order), ``name=v``."""
    if "=" not in text:
        raise EnvgenError(f"--param {text!r}: expected NAME=VALUES, e.g. random-state=0..9 or classifier=logistic,svm")
    name, _, spec = text.partition("=")
    name = name.strip()
    if not NAME_RE.match(name):
        raise EnvgenError(f"--param {text!r}: {name!r} is not a parameter name (letters, digits, '-', '_')")
    spec = spec.strip()
    m = RANGE_RE.match(spec)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if hi < lo:
            raise EnvgenError(f"--param {text!r}: the range {lo}..{hi} is empty")
        if hi - lo >= 100_000:
            raise EnvgenError(f"--param {text!r}: the range has {hi - lo + 1} values; "
                              "that is not a sweep, that is a mistake")
        values = tuple(str(v) for v in range(lo, hi + 1))
    else:
        values = tuple(v.strip() for v in spec.split(","))
        if not spec or any(v == "" for v in values):
            raise EnvgenError(f"--param {text!r}: empty value; give a list like a,b,c or a range like 0..9")
    return Param(name, values)


def expand(params: list[Param]) -> list[dict[str, str]]:
    if not params:
        raise EnvgenError("an empty grid: give at least one --param NAME=VALUES")
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise EnvgenError(f"--param given twice for {sorted(n for n in set(names) if names.count(n) > 1)[0]!r}")
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(p.values for p in params))]


def point_command(template: list[str], values: dict[str, str], out: str) -> list[str]:
    """Fill ``{out}`` and ``{name}`` placeholders; append ``--name value`` for parameters not used as placeholders."""
    used: set[str] = set()

    def fill(token: str) -> str:
        def sub(m: re.Match) -> str:
            key = m.group(1)
            if key == "out":
                return out
            if key in values:
                used.add(key)
                return values[key]
            return m.group(0)
        return re.sub(r"\{([A-Za-z][A-Za-z0-9_-]*)\}", sub, token)

    cmd = [fill(t) for t in template]
    for name, value in values.items():
        if name not in used:
            cmd += [f"--{name}", value]
    return cmd
