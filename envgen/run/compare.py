"""Compare a rerun's outputs with a recorded run's, file by file.

Each recorded output is *identical*, *differing* or *missing* in the rerun;
files only the rerun wrote are *new*.  Files matching the spec's declared
nondeterministic globs are reported apart (*nondeterministic*) and never fail
the comparison.  For CSV files that differ, the columns that differ are
named; if they are all declared nondeterministic, the file counts as
*identical-except-nondeterministic* and does not fail.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import posixpath


def _matches(path: str, patterns: list[str]) -> bool:
    name = posixpath.basename(path)
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in patterns)


def csv_column_diff(old: bytes, new: bytes) -> dict:
    """Which columns differ between two CSV files (by header name), and row-count changes."""
    a = list(csv.reader(io.StringIO(old.decode("utf-8", "replace"))))
    b = list(csv.reader(io.StringIO(new.decode("utf-8", "replace"))))
    if not a or not b:
        return {"columns": [], "header_changed": bool(a) != bool(b), "rows": [len(a), len(b)]}
    ha, hb = a[0], b[0]
    cols = []
    for i, name in enumerate(ha):
        if name not in hb:
            cols.append(name)
            continue
        j = hb.index(name)
        va = [r[i] if i < len(r) else None for r in a[1:]]
        vb = [r[j] if j < len(r) else None for r in b[1:]]
        if va != vb:
            cols.append(name)
    cols += [n for n in hb if n not in ha]
    return {"columns": cols, "header_changed": ha != hb, "rows": [len(a) - 1, len(b) - 1]}


def compare_outputs(recorded: dict, rerun: dict, nondeterministic: dict, read_old, read_new) -> dict:
    """*recorded*/*rerun*: {container path: {sha256, size}}; read_old/read_new(path) -> bytes."""
    nd_files = list(nondeterministic.get("files", []))
    nd_cols: dict = nondeterministic.get("columns", {})
    files = []
    for path in sorted(set(recorded) | set(rerun)):
        old, new = recorded.get(path), rerun.get(path)
        entry = {"path": path}
        if old is None:
            entry["status"] = "new"
        elif new is None:
            entry["status"] = "missing"
        elif old["sha256"] == new["sha256"]:
            entry["status"] = "identical"
        else:
            entry["status"] = "differing"
            if path.lower().endswith(".csv"):
                diff = csv_column_diff(read_old(path), read_new(path))
                entry["csv"] = diff
                allowed = [c for pat, cs in nd_cols.items() if _matches(path, [pat]) for c in cs]
                if diff["columns"] and not diff["header_changed"] and diff["rows"][0] == diff["rows"][1] and all(
                        any(fnmatch.fnmatch(c, p) for p in allowed) for c in diff["columns"]):
                    entry["status"] = "identical-except-nondeterministic"
        if entry["status"] in ("differing", "missing", "new") and _matches(path, nd_files):
            entry["declared_nondeterministic"] = True
            entry["status"] = f"nondeterministic ({entry['status']})"
        files.append(entry)
    failing = [f for f in files if f["status"] in ("differing", "missing")]
    verdict = "identical" if not failing else "differing"
    return {"verdict": verdict, "files": files,
            "counts": {s: sum(1 for f in files if f["status"] == s) for s in sorted({f["status"] for f in files})}}
