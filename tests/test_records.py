"""The provenance database (envgen/run/records.py): add, update, look up, tag, comment, versions."""

from __future__ import annotations

import sqlite3

import pytest

from envgen.errors import EnvgenError, NewerFormatError
from envgen.run.records import Record, Records, new_run_id


def record(run_id: str, started: str, **kw) -> Record:
    base = dict(id=run_id, started=started, runtime="bwrap", command=["python", "-c", "1"],
                binds=[{"src": "/host/data", "dst": "/data", "mode": "ro"}], network=False,
                env={"PYTHONHASHSEED": "0"}, code={"vcs": None}, inputs={"/data/x": {"sha256": "a" * 64, "size": 1}},
                outputs={}, host={"cores": 2}, nondeterministic={}, snapshot_id="s" * 64, tree_digest="t" * 64)
    base.update(kw)
    return Record(**base)


@pytest.fixture
def db(tmp_path):
    r = Records(tmp_path / "records.sqlite")
    yield r
    r.close()


def test_a_record_round_trips(db):
    db.add(record("20250101-000000-aaaaaa", "2025-01-01T00:00:00.000Z", label="fig1", tags=["paper", "a"]))
    got = db.get("20250101-000000-aaaaaa")
    assert got.command == ["python", "-c", "1"] and got.binds[0]["dst"] == "/data" and got.network is False
    assert got.inputs["/data/x"]["sha256"] == "a" * 64 and got.label == "fig1"
    assert got.tags == ["a", "paper"] and got.exit_status is None
    db.update_result(got.id, outputs={"/out/y": {"sha256": "b" * 64, "size": 2}}, exit_status=3, duration=1.5)
    again = db.get(got.id)
    assert again.exit_status == 3 and again.duration == 1.5 and again.outputs["/out/y"]["size"] == 2


def test_prefixes_resolve_and_ambiguity_is_an_error(db):
    db.add(record("20250101-000000-aaaaaa", "2025-01-01T00:00:00.000Z"))
    db.add(record("20250101-000000-aabbbb", "2025-01-01T00:00:01.000Z"))
    assert db.resolve_id("20250101-000000-aab") == "20250101-000000-aabbbb"
    with pytest.raises(EnvgenError, match="ambiguous"):
        db.resolve_id("20250101-000000-aa")
    with pytest.raises(EnvgenError, match="no run with id"):
        db.resolve_id("1999")


def test_list_newest_first_filtered_by_tag(db):
    db.add(record("r1", "2025-01-01T00:00:00.000Z", tags=["x"]))
    db.add(record("r2", "2025-01-02T00:00:00.000Z"))
    db.add(record("r3", "2025-01-03T00:00:00.000Z", tags=["x"]))
    assert [r.id for r in db.list()] == ["r3", "r2", "r1"]
    assert [r.id for r in db.list(tag="x")] == ["r3", "r1"]
    assert [r.id for r in db.list(limit=1)] == ["r3"]


def test_tags_and_comments(db):
    db.add(record("r1", "2025-01-01T00:00:00.000Z"))
    db.tag("r1", "paper")
    db.tag("r1", "paper")  # once
    db.comment("r1", "first try")
    got = db.get("r1")
    assert got.tags == ["paper"] and [c["text"] for c in got.comments] == ["first try"]


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "records.sqlite"
    Records(path).close()
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE meta SET value='99' WHERE key='schema-version'")
    con.close()
    with pytest.raises(NewerFormatError, match="upgrade envgen|newer envgen"):
        Records(path)


def test_run_ids_sort_by_time_and_differ():
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 22 for i in ids)
