"""Comparing a rerun's outputs with the recorded ones (envgen/run/compare.py)."""

from __future__ import annotations

import hashlib

from envgen.run.compare import compare_outputs, csv_column_diff


def outputs(files: dict[str, bytes]) -> tuple[dict, callable]:
    info = {p: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for p, b in files.items()}
    return info, files.__getitem__


def compare(old: dict[str, bytes], new: dict[str, bytes], nd: dict | None = None) -> dict:
    (a, read_a), (b, read_b) = outputs(old), outputs(new)
    return compare_outputs(a, b, nd or {}, read_a, read_b)


def status(result: dict) -> dict[str, str]:
    return {f["path"]: f["status"] for f in result["files"]}


def test_identical_missing_new_and_differing():
    res = compare({"/out/a.txt": b"1", "/out/b.txt": b"2", "/out/c.txt": b"3"},
                  {"/out/a.txt": b"1", "/out/c.txt": b"changed", "/out/d.txt": b"4"})
    assert status(res) == {"/out/a.txt": "identical", "/out/b.txt": "missing", "/out/c.txt": "differing",
                           "/out/d.txt": "new"}
    assert res["verdict"] == "differing"
    assert res["counts"] == {"differing": 1, "identical": 1, "missing": 1, "new": 1}


def test_a_new_file_alone_does_not_fail():
    assert compare({"/out/a": b"1"}, {"/out/a": b"1", "/out/log": b"x"})["verdict"] == "identical"


def test_declared_nondeterministic_files_never_fail():
    res = compare({"/out/a": b"1", "/out/timing.json": b"1.0"}, {"/out/a": b"1", "/out/timing.json": b"2.0"},
                  {"files": ["timing.json"]})
    assert status(res)["/out/timing.json"] == "nondeterministic (differing)"
    assert res["verdict"] == "identical"


def test_csv_columns_that_differ_are_named():
    old = b"seed,score,fit_time\n0,0.71,1.2\n1,0.69,1.3\n"
    new = b"seed,score,fit_time\n0,0.71,1.9\n1,0.69,1.1\n"
    diff = csv_column_diff(old, new)
    assert diff == {"columns": ["fit_time"], "header_changed": False, "rows": [2, 2]}
    res = compare({"/out/r.csv": old}, {"/out/r.csv": new})
    assert status(res)["/out/r.csv"] == "differing" and res["files"][0]["csv"]["columns"] == ["fit_time"]
    ok = compare({"/out/r.csv": old}, {"/out/r.csv": new}, {"columns": {"r.csv": ["*_time"]}})
    assert status(ok)["/out/r.csv"] == "identical-except-nondeterministic" and ok["verdict"] == "identical"


def test_a_declared_column_does_not_excuse_other_changes():
    old = b"seed,score,fit_time\n0,0.71,1.2\n"
    new = b"seed,score,fit_time\n0,0.70,1.9\n"
    res = compare({"/out/r.csv": old}, {"/out/r.csv": new}, {"columns": {"r.csv": ["*_time"]}})
    assert status(res)["/out/r.csv"] == "differing" and res["files"][0]["csv"]["columns"] == ["score", "fit_time"]
    more_rows = compare({"/out/r.csv": old}, {"/out/r.csv": old + b"1,0.5,2.0\n"}, {"columns": {"r.csv": ["*"]}})
    assert more_rows["verdict"] == "differing"


def test_renamed_column_is_a_header_change():
    diff = csv_column_diff(b"a,b\n1,2\n", b"a,c\n1,2\n")
    assert diff["header_changed"] and set(diff["columns"]) == {"b", "c"}
