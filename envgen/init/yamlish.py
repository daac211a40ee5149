"""The YAML of conda ``environment.yml`` files, and nothing more.

environment.yml files are block mappings and block sequences of strings::

    name: demo
    channels: [conda-forge]        # flow lists of scalars too
    dependencies:
      - python=3.11
      - numpy>=1.26
      - pip:
        - nilearn==0.11.1

This reader takes exactly that shape: block mappings and sequences (a
sequence may sit at its key's indentation), ``- key: value`` items,
plain, 'single' and "double" quoted scalars, flow lists of scalars, and
``#`` comments.  Every scalar stays a string (``3.10`` is ``"3.10"``, not a
float, which is what a version wants); an empty value is ``None``.  Anything
else YAML allows (anchors, tags, block scalars, flow mappings, multi-line
scalars, tabs, several documents) is refused with one line naming the file
and the line, so that nothing is read in a way its author did not mean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import FormatError


@dataclass
class _Line:
    no: int  # 1-based
    indent: int
    text: str  # without indentation and comment


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "0": "\0", " ": " "}


class YamlSubsetError(FormatError):
    """A file uses YAML beyond what environment.yml files need."""


def loads(text: str, where: str) -> Any:
    """The document in *text*: dicts, lists, strings and None."""
    lines = _lines(text, where)
    if not lines:
        return None
    value, i = _block(lines, 0, lines[0].indent, where)
    if i != len(lines):
        raise YamlSubsetError(f"{where}:{lines[i].no}: unexpected indentation")
    return value


def _strip_comment(s: str) -> str:
    """*s* without a ``#`` comment (one at the start, or after a space, outside quotes)."""
    quote = None
    for i, ch in enumerate(s):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'" and (i == 0 or s[i - 1] in " \t:-[,"):
            quote = ch
        elif ch == "#" and (i == 0 or s[i - 1] in " \t"):
            return s[:i].rstrip()
    return s.rstrip()


def _lines(text: str, where: str) -> list[_Line]:
    out: list[_Line] = []
    started = False
    for no, raw in enumerate(text.splitlines(), 1):
        body = raw.lstrip(" ")
        if body.startswith("\t"):
            raise YamlSubsetError(f"{where}:{no}: a tab in the indentation (YAML indents with spaces)")
        body = _strip_comment(body)
        if not body:
            continue
        if body.startswith("%"):
            raise YamlSubsetError(f"{where}:{no}: YAML directives ({body.split()[0]}) are not read")
        if body in ("---", "..."):
            if started and body == "---":
                raise YamlSubsetError(f"{where}:{no}: a second YAML document; environment.yml holds one")
            continue
        started = True
        out.append(_Line(no, len(raw) - len(raw.lstrip(" ")), body))
    return out


def _is_item(text: str) -> bool:
    return text == "-" or text.startswith("- ")


def _block(lines: list[_Line], i: int, indent: int, where: str) -> tuple[Any, int]:
    """The block node starting at lines[i] (at *indent*) and the index after it."""
    if _is_item(lines[i].text):
        return _sequence(lines, i, indent, where)
    return _mapping(lines, i, indent, where, lines[i].text)


def _sequence(lines: list[_Line], i: int, indent: int, where: str) -> tuple[list, int]:
    out: list = []
    while i < len(lines) and lines[i].indent == indent and _is_item(lines[i].text):
        line = lines[i]
        rest = line.text[1:].lstrip(" ")
        if not rest:  # "-" alone: the item is the block below
            if i + 1 < len(lines) and lines[i + 1].indent > indent:
                item, i = _block(lines, i + 1, lines[i + 1].indent, where)
            else:
                item, i = None, i + 1
        elif _is_item(rest):
            raise YamlSubsetError(f"{where}:{line.no}: nested '- - ' sequences are not read")
        elif _split_key(rest) is not None:
            # "- key: value": a mapping whose keys sit at the column of "key"
            col = indent + (len(line.text) - len(rest))
            item, i = _mapping(lines, i, col, where, rest)
        else:
            item, i = _scalar(rest, where, line.no), i + 1
        out.append(item)
    return out, i


def _split_key(text: str) -> tuple[str, str | None] | None:
    """``key: value`` -> (key text, value text or None); None when *text* is not a mapping entry."""
    if text[0] in "\"'":
        end = _quote_end(text)
        if end is None:
            return None
        rest = text[end + 1:].lstrip(" ")
        if rest == ":" or rest.startswith(": "):
            return text[:end + 1], rest[1:].strip() or None
        return None
    if text[0] in "[{&*!|>%@`?":
        return None
    m = re.search(r":(\s|$)", text)
    if not m:
        return None
    return text[:m.start()].rstrip(), text[m.end():].strip() or None


def _quote_end(text: str) -> int | None:
    """The index of the quote that closes the one at text[0]."""
    q = text[0]
    i = 1
    while i < len(text):
        if q == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == q:
            if q == "'" and text[i + 1:i + 2] == "'":
                i += 2
                continue
            return i
        i += 1
    return None


def _mapping(lines: list[_Line], i: int, indent: int, where: str, first: str) -> tuple[dict, int]:
    out: dict = {}
    text = first
    while True:
        line = lines[i]
        split = _split_key(text)
        if split is None:
            raise YamlSubsetError(f"{where}:{line.no}: expected 'key: value', got {text!r}")
        key = _scalar(split[0], where, line.no)
        if not isinstance(key, str):
            raise YamlSubsetError(f"{where}:{line.no}: a key must be a string, got {split[0]!r}")
        if key in out:
            raise YamlSubsetError(f"{where}:{line.no}: key {key!r} given twice")
        value = split[1]
        i += 1
        if value is not None:
            out[key] = _scalar(value, where, line.no)
        elif i < len(lines) and lines[i].indent > indent:
            out[key], i = _block(lines, i, lines[i].indent, where)
        elif i < len(lines) and lines[i].indent == indent and _is_item(lines[i].text):
            out[key], i = _sequence(lines, i, indent, where)  # a sequence at its key's indentation
        else:
            out[key] = None
        if i >= len(lines) or lines[i].indent != indent:
            if i < len(lines) and lines[i].indent > indent:
                raise YamlSubsetError(f"{where}:{lines[i].no}: unexpected indentation")
            return out, i
        if _is_item(lines[i].text):
            return out, i  # the enclosing sequence's next item
        text = lines[i].text


def _scalar(text: str, where: str, no: int) -> Any:
    if text[0] == '"':
        return _double(text, where, no)
    if text[0] == "'":
        if len(text) < 2 or not text.endswith("'") or re.search(r"(?<!')'(?!')", text[1:-1]):
            raise YamlSubsetError(f"{where}:{no}: an unterminated or multi-line 'quoted' string")
        return text[1:-1].replace("''", "'")
    if text[0] == "[":
        return _flow_list(text, where, no)
    if text[0] in "{&*!|>@`":
        what = {"{": "flow mappings", "&": "anchors", "*": "aliases", "!": "tags", "|": "block scalars",
                ">": "block scalars"}.get(text[0], f"scalars starting with {text[0]!r}")
        raise YamlSubsetError(f"{where}:{no}: YAML {what} are not read (environment.yml needs none)")
    if text in ("~", "null", "Null", "NULL"):
        return None
    if re.search(r":\s", text) or text.endswith(":"):
        raise YamlSubsetError(f"{where}:{no}: a mapping where a value was expected: {text!r}")
    return text


def _double(text: str, where: str, no: int) -> str:
    out = []
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1:i + 2]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt in ("u", "x") and re.fullmatch(r"[0-9A-Fa-f]+", text[i + 2:i + (6 if nxt == "u" else 4)] or "-"):
                width = 4 if nxt == "u" else 2
                out.append(chr(int(text[i + 2:i + 2 + width], 16)))
                i += 2 + width
                continue
            raise YamlSubsetError(f"{where}:{no}: an escape \\{nxt} that this reader does not know")
        if ch == '"':
            if text[i + 1:].strip():
                raise YamlSubsetError(f"{where}:{no}: text after a closing quote: {text!r}")
            return "".join(out)
        out.append(ch)
        i += 1
    raise YamlSubsetError(f"{where}:{no}: an unterminated or multi-line \"quoted\" string")


def _flow_list(text: str, where: str, no: int) -> list:
    if not text.endswith("]"):
        raise YamlSubsetError(f"{where}:{no}: a flow list must close on its line: {text!r}")
    inner = text[1:-1].strip()
    if not inner:
        return []
    items = []
    for part in re.findall(r"""\s*("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^,]+)\s*(?:,|$)""", inner):
        part = part.strip()
        if part[:1] in "[{":
            raise YamlSubsetError(f"{where}:{no}: nested flow collections are not read: {text!r}")
        items.append(_scalar(part, where, no))
    return items
