"""Declarative validation of parsed TOML/JSON with msgspec, and its one-line errors.

A file's schema is a tree of :class:`msgspec.Struct` types (``kw_only``,
``forbid_unknown_fields``, ``rename="kebab"``) whose fields carry
``msgspec.Meta`` constraints and a ``description`` of what is expected.
:func:`convert` turns the dict that :mod:`tomllib` or :mod:`json` gives into
those types; when that fails it raises the caller's error class with one line
that names the file, the dotted key (``os.base``, ``requirements[2]``) and the
field's description, e.g.::

    specs/demo.toml: key 'os.base': expected one of debian/bookworm, debian/trixie, got 'debian/sid'
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi

from .clock import SnapshotDate
from .errors import EnvgenError

T = TypeVar("T")

# Types msgspec does not know, and how to build them from a decoded value.
DECODERS: dict[type, Callable[[Any], Any]] = {SnapshotDate: SnapshotDate.parse}

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ in DECODERS:
        return DECODERS[type_](obj)
    raise NotImplementedError(f"no decoder for {type_!r}")


def convert(data: Any, type_: type[T], where: str, error: type[EnvgenError] = EnvgenError) -> T:
    """*data* as *type_*, or *error* with one line naming *where*, the key and what was expected."""
    try:
        return msgspec.convert(data, type_, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise error(explain(exc, data, type_, where)) from None


def key_of(segments: list[str | int]) -> str:
    """Dotted form of a path: ``["os", "packages", 2]`` -> ``os.packages[2]``."""
    out = ""
    for s in segments:
        if isinstance(s, int):
            out += f"[{s}]"
        else:
            out += f".{s}" if out else s
    return out


def explain(exc: msgspec.ValidationError, data: Any, type_: type, where: str) -> str:
    """Translate msgspec's ``Expected … - at `$.os.base``` into envgen's one-line form."""
    m = _AT.match(str(exc))
    assert m is not None
    msg, segments = m.group("msg"), _segments(m.group("path") or "")
    if "..." in segments:  # inside a table whose keys are free: the error is about that table
        segments = segments[:segments.index("...")]
    node = _node(mi.type_info(type_), segments)
    if u := _UNKNOWN.match(msg):
        key = key_of([*segments, u.group("name")])
        allowed = ", ".join(sorted(f.encode_name for f in node.fields)) if isinstance(node, mi.StructType) else ""
        return f"{where}: unknown key '{key}'" + (f"; allowed here: {allowed}" if allowed else "")
    if u := _MISSING.match(msg):
        segments = [*segments, u.group("name")]
        expected = _description(mi.type_info(type_), segments)
        return f"{where}: missing required key '{key_of(segments)}'" + (f": expected {expected}" if expected else "")
    expected = _description(mi.type_info(type_), segments) or _lower(msg)
    text = f"{where}: key '{key_of(segments)}': expected {expected}"
    found, value = _value(data, segments)
    return text + (f", got {_shown(value)}" if found else "")


def _segments(path: str) -> list[str | int]:
    out: list[str | int] = []
    for name, index in _SEGMENT.findall(path):
        out.append(name if name else (int(index) if index.isdigit() else index))
    return out


def _unwrap(t: mi.Type) -> tuple[mi.Type, str | None]:
    """The type under any Metadata, and the innermost description on the way.

    An optional field (``X | None``) is described by its one other member.
    """
    desc = None
    while True:
        if isinstance(t, mi.Metadata):
            desc = (t.extra_json_schema or {}).get("description", desc)
            t = t.type
        elif isinstance(t, mi.UnionType) and len(others := [m for m in t.types if not isinstance(m, mi.NoneType)]) == 1:
            t = others[0]
        else:
            return t, desc


def _step(t: mi.Type, seg: str | int) -> mi.Type | None:
    if isinstance(t, mi.UnionType):
        for member in t.types:
            nxt = _step(_unwrap(member)[0], seg)
            if nxt is not None:
                return nxt
        return None
    if isinstance(t, mi.StructType) and isinstance(seg, str):
        return next((f.type for f in t.fields if f.encode_name == seg), None)
    if isinstance(t, (mi.ListType, mi.TupleType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
        return t.item_type if not isinstance(t, mi.TupleType) else None
    if isinstance(t, mi.DictType):
        return t.value_type
    return None


def _node(t: mi.Type, segments: list[str | int]) -> mi.Type | None:
    cur: mi.Type | None = t
    for seg in segments:
        if cur is None:
            return None
        cur = _step(_unwrap(cur)[0], seg)
    return _unwrap(cur)[0] if cur is not None else None


def _description(t: mi.Type, segments: list[str | int]) -> str | None:
    """The description of the key at *segments*: its own, else (for a list item) its list's."""
    found = None
    cur: mi.Type = t
    for seg in segments:
        base, _ = _unwrap(cur)
        nxt = _step(base, seg)
        if nxt is None:
            return None
        cur = nxt
        own = _unwrap(cur)[1]
        found = own if own or isinstance(base, mi.StructType) else found
    return found


def _value(data: Any, segments: list[str | int]) -> tuple[bool, Any]:
    for seg in segments:
        if isinstance(seg, int) and isinstance(data, list) and seg < len(data):
            data = data[seg]
        elif isinstance(seg, str) and isinstance(data, dict) and seg in data:
            data = data[seg]
        else:
            return False, None
    return True, data


def _shown(value: Any) -> str:
    if isinstance(value, (dt.date, dt.time)):  # TOML dates and times: as written, not as Python reprs
        return value.isoformat()
    return repr(value)


def _lower(msg: str) -> str:
    msg = msg.removeprefix("Expected ").split(", got ")[0]
    return msg[:1].lower() + msg[1:]
