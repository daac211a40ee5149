"""The provenance database (envgen/run/records.py): add, update, look up, tag, comment, versions; runs' own
record files moved in, and what an unfinished record says."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys

import pytest

from envgen.errors import EnvgenError, NewerFormatError
from envgen.run.records import (
    FINISHED,
    STARTED,
    STARTING,
    Record,
    Records,
    new_run_id,
    now_iso,
    owner_facts,
    process_start,
    status,
    write_pending,
)


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
    assert new_run_id(86400 * 365 + 3661.5)[:16] == "19710101-010101-"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now_iso())


# --------------------------------------------------------------------------- runs' own record files


def _owner_of(proc: subprocess.Popen) -> dict:
    """The owner facts of another (real) process, as run_recorded writes its own."""
    return {**owner_facts(), "pid": proc.pid, "start": process_start(proc.pid)}


def test_a_run_record_file_is_moved_in_and_a_killed_owner_reads_killed(tmp_path):
    journal = tmp_path / "records.d"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        rec = record("20250101-000000-aaaaaa", "2025-01-01T00:00:00.000Z", state=STARTED, owner=_owner_of(sleeper),
                     tags=["sweep:x"])
        write_pending(journal, rec)
        db = Records(tmp_path / "records.sqlite", journal)
        got = db.get(rec.id)
        assert status(got) == "running" and got.tags == ["sweep:x"] and got.inputs == rec.inputs
        assert (journal / f"{rec.id}.json").is_file()  # its envgen runs: it may change again
        db.close()
        sleeper.kill()
        sleeper.wait()
        db = Records(tmp_path / "records.sqlite", journal)
        got = db.get(rec.id)
        assert status(got) == "killed" and got.exit_status is None
        assert not (journal / f"{rec.id}.json").exists()  # final now: the database has it all
        db.close()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def test_a_record_only_moves_forward(tmp_path):
    journal = tmp_path / "records.d"
    db = Records(tmp_path / "records.sqlite", journal)
    rec = record("r1", "2025-01-01T00:00:00.000Z", state=FINISHED, exit_status=0, duration=1.0, owner=owner_facts())
    write_pending(journal, rec, durable=True)
    assert db.take_pending() == 1 and status(db.get("r1")) == "finished"
    assert not list(journal.iterdir())
    # a reader that read the run's earlier file late must not undo the finished row
    early = record("r1", "2025-01-01T00:00:00.000Z", state=STARTING, owner=owner_facts(), inputs={})
    write_pending(journal, early)
    db.take_pending()
    got = db.get("r1")
    assert got.state == FINISHED and got.exit_status == 0 and got.inputs["/data/x"]["size"] == 1
    db.close()


def test_a_newer_or_broken_run_record_file_is_refused_by_name(tmp_path):
    journal = tmp_path / "records.d"
    journal.mkdir()
    (journal / "r1.json").write_text('{"kind": "envgen-pending-run", "format-version": 99, "record": {}}')
    with pytest.raises(NewerFormatError, match="r1.json"):
        Records(tmp_path / "records.sqlite", journal)
    (journal / "r1.json").write_text("{not json")
    with pytest.raises(EnvgenError, match="r1.json"):
        Records(tmp_path / "records.sqlite", journal)


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (id TEXT PRIMARY KEY, started TEXT NOT NULL, duration REAL, label TEXT, reason TEXT, spec TEXT,
    env_name TEXT, runtime TEXT NOT NULL, builder TEXT, snapshot_id TEXT, tree_digest TEXT, build_key TEXT,
    command TEXT NOT NULL, workdir TEXT, binds TEXT NOT NULL, network INTEGER NOT NULL, env TEXT NOT NULL,
    code TEXT NOT NULL, inputs TEXT NOT NULL, outputs TEXT NOT NULL, exit_status INTEGER, host TEXT NOT NULL,
    nondeterministic TEXT NOT NULL, rerun_of TEXT);
CREATE TABLE tags (run_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (run_id, tag));
CREATE TABLE comments (run_id TEXT NOT NULL, created TEXT NOT NULL, text TEXT NOT NULL);
INSERT INTO meta VALUES ('schema-version', '1');
"""


def test_a_version_1_database_is_brought_up_to_date(tmp_path):
    path = tmp_path / "records.sqlite"
    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA)
    row = ("done", "2025-01-01T00:00:00.000Z", 1.5, None, None, None, None, "bwrap", None, None, None, None,
           '["true"]', "/", "[]", 0, "{}", '{"vcs": null}', "{}", "{}", 0, "{}", "{}", None)
    con.execute(f"INSERT INTO runs VALUES ({','.join('?' * len(row))})", row)
    con.execute(f"INSERT INTO runs VALUES ({','.join('?' * len(row))})", ("unfinished", *row[1:2], None,
                                                                          *row[3:20], None, *row[21:]))
    con.commit()
    con.close()
    db = Records(path)
    assert status(db.get("done")) == "finished" and db.get("done").state is None
    assert status(db.get("unfinished")) == "incomplete"
    db.add(record("new", "2025-01-02T00:00:00.000Z", state=FINISHED, owner=owner_facts(), exit_status=0))
    assert db.get("new").owner["pid"] == os.getpid()
    db.close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT value FROM meta WHERE key='schema-version'").fetchone()[0] == "2"
    con.close()
