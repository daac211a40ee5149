"""A long list of files, summarised: how many, how large, one digest of the set, the first few.

A run's record lists every input and output file (``{path: {sha256, size}}``);
the ABIDE pipeline reads 137 inputs.  :func:`summarise_files` is what both
`envgen runs show` (terminal) and the records site (`envgen runs --html`) show
in place of the whole list: they fold the rest away (``--all``, ``<details>``).

The **set digest** is the sha256 of the list in ``sha256sum`` form, sorted by
path: one line ``<sha256>  <path>\\n`` per file.  Two runs with the same
digest saw (or wrote) the same files with the same contents.
"""

from __future__ import annotations

import hashlib

FIRST = 5          # entries shown before the list is folded
SHOW_WHOLE = 10    # lists this long or shorter are shown whole


def set_digest(files: dict) -> str:
    """sha256 of ``"<sha256>  <path>\\n"`` per file, sorted by path (the empty set: sha256 of nothing)."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{files[path]['sha256']}  {path}\n".encode())
    return h.hexdigest()


def summarise_files(files: dict, first: int = FIRST) -> dict:
    """``{count, bytes, digest, first: [{path, sha256, size}…], more}`` of a ``{path: {sha256, size}}`` map."""
    entries = [{"path": p, "sha256": files[p]["sha256"], "size": files[p].get("size")} for p in sorted(files)]
    shown = entries if len(entries) <= SHOW_WHOLE else entries[:first]
    return {
        "count": len(entries),
        "bytes": sum(e["size"] or 0 for e in entries),
        "digest": set_digest(files),
        "first": shown,
        "more": len(entries) - len(shown),
    }


def human_size(n: int | None) -> str:
    """``512 B``, ``1.5 kB``, ``12.3 MB`` (decimal units)."""
    if n is None:
        return "?"
    if n < 1000:
        return f"{n} B"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000  # type: ignore[assignment]
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def summary_line(s: dict) -> str:
    """``137 files, 12.3 MB, set sha256 0123456789abcdef…``"""
    files = f"{s['count']} file{'' if s['count'] == 1 else 's'}"
    return f"{files}, {human_size(s['bytes'])}, set sha256 {s['digest'][:16]}…"
