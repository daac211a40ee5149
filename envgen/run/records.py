"""Provenance records: one row per run, in SQLite beside the store objects.

In the spirit of Sumatra (``smt run --label --reason``, ``smt repeat``) and
DataLad (``datalad run/rerun``): every ``envgen run`` records what ran
(command, env identity: snapshot id and tree digest), on what (the sha256 of
every input file under read-only binds), what it produced (every output file
under writable binds, hashed and kept as a store object, so a rerun can be
compared with it even after the files are gone), the code revision of the
working directory, and when, where and how it ended.

Records are history, not artifacts: they carry real times and host facts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .. import formats
from ..errors import EnvgenError

SCHEMA_VERSION = formats.current("envgen-records")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    duration REAL,
    label TEXT,
    reason TEXT,
    spec TEXT,
    env_name TEXT,
    runtime TEXT NOT NULL,
    builder TEXT,
    snapshot_id TEXT,
    tree_digest TEXT,
    build_key TEXT,
    command TEXT NOT NULL,
    workdir TEXT,
    binds TEXT NOT NULL,
    network INTEGER NOT NULL,
    env TEXT NOT NULL,
    code TEXT NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    exit_status INTEGER,
    host TEXT NOT NULL,
    nondeterministic TEXT NOT NULL,
    rerun_of TEXT
);
CREATE TABLE IF NOT EXISTS tags (run_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (run_id, tag));
CREATE TABLE IF NOT EXISTS comments (run_id TEXT NOT NULL, created TEXT NOT NULL, text TEXT NOT NULL);
"""
JSON_FIELDS = ("command", "binds", "env", "code", "inputs", "outputs", "host", "nondeterministic")


@dataclass
class Record:
    id: str
    started: str
    runtime: str
    command: list[str]
    binds: list[dict]
    network: bool
    env: dict
    code: dict
    inputs: dict
    outputs: dict
    host: dict
    nondeterministic: dict
    duration: float | None = None
    label: str | None = None
    reason: str | None = None
    spec: str | None = None
    env_name: str | None = None
    builder: str | None = None
    snapshot_id: str | None = None
    tree_digest: str | None = None
    build_key: str | None = None
    workdir: str | None = None
    exit_status: int | None = None
    rerun_of: str | None = None
    tags: list[str] = field(default_factory=list)
    comments: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        return d


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%d-%H%M%S-") + os.urandom(3).hex()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def host_facts() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    u = os.uname()  # not `platform`: its import compiles dozens of regexes on every run
    return {"kernel": u.release, "machine": u.machine, "cpu": cpu, "cores": os.cpu_count() or 0, "os": u.sysname}


class Records:
    """The run database (``records.sqlite`` in the store directory)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.row_factory = sqlite3.Row
        with self.db:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema-version'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('schema-version', ?)", (str(SCHEMA_VERSION),))
            else:
                formats.check("envgen-records", int(row["value"]), str(self.path))

    def close(self) -> None:
        self.db.close()

    def add(self, rec: Record) -> None:
        cols = [k for k in rec.__dict__ if k not in ("tags", "comments")]
        vals = [json.dumps(getattr(rec, k), sort_keys=True) if k in JSON_FIELDS else getattr(rec, k) for k in cols]
        vals = [int(v) if isinstance(v, bool) else v for v in vals]
        with self.db:
            self.db.execute(f"INSERT INTO runs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", vals)
            for t in sorted(set(rec.tags)):
                self.db.execute("INSERT OR IGNORE INTO tags VALUES (?, ?)", (rec.id, t))

    def update_result(self, run_id: str, **fields) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        vals = [json.dumps(v, sort_keys=True) if k in JSON_FIELDS else v for k, v in fields.items()]
        with self.db:
            self.db.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*vals, run_id])

    def _row(self, row: sqlite3.Row) -> Record:
        d = dict(row)
        for k in JSON_FIELDS:
            d[k] = json.loads(d[k]) if d[k] is not None else None
        d["network"] = bool(d["network"])
        rec = Record(**d)
        rec.tags = [r["tag"] for r in self.db.execute("SELECT tag FROM tags WHERE run_id=? ORDER BY tag", (rec.id,))]
        rec.comments = [dict(r) for r in self.db.execute(
            "SELECT created, text FROM comments WHERE run_id=? ORDER BY created, rowid", (rec.id,))]
        return rec

    def resolve_id(self, prefix: str) -> str:
        rows = self.db.execute("SELECT id FROM runs WHERE id LIKE ? ORDER BY id", (prefix + "%",)).fetchall()
        if not rows:
            raise EnvgenError(f"no run with id {prefix!r}", hint="`envgen runs` lists the recorded runs")
        if len(rows) > 1 and not any(r["id"] == prefix for r in rows):
            raise EnvgenError(f"run id {prefix!r} is ambiguous ({', '.join(r['id'] for r in rows[:4])})",
                              hint="give more characters of the id")
        return prefix if any(r["id"] == prefix for r in rows) else rows[0]["id"]

    def get(self, prefix: str) -> Record:
        run_id = self.resolve_id(prefix)
        return self._row(self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())

    def list(self, tag: str | None = None, limit: int | None = None) -> list[Record]:
        q = "SELECT * FROM runs"
        args: list = []
        if tag:
            q += " WHERE id IN (SELECT run_id FROM tags WHERE tag = ?)"
            args.append(tag)
        q += " ORDER BY started DESC, id DESC"
        if limit:
            q += f" LIMIT {int(limit)}"
        return [self._row(r) for r in self.db.execute(q, args)]

    def tag(self, prefix: str, tag: str) -> str:
        run_id = self.resolve_id(prefix)
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO tags VALUES (?, ?)", (run_id, tag))
        return run_id

    def comment(self, prefix: str, text: str) -> str:
        run_id = self.resolve_id(prefix)
        with self.db:
            self.db.execute("INSERT INTO comments VALUES (?, ?, ?)", (run_id, now_iso(), text))
        return run_id
