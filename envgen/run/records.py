"""Provenance records: one row per run, in SQLite beside the store objects.

In the spirit of Sumatra (``smt run --label --reason``, ``smt repeat``) and
DataLad (``datalad run/rerun``): every ``envgen run`` records what ran
(command, env identity: snapshot id and tree digest), on what (the sha256 of
every input file under read-only binds), what it produced (every output file
under writable binds, hashed and kept as a store object, so a rerun can be
compared with it even after the files are gone), the code revision of the
working directory, and when, where and how it ended.

Records are history, not artifacts: they carry real times and host facts.

**No run goes unrecorded.**  A run writes its record as a file of its own,
``records.d/<id>.json`` (:func:`write_pending`), before the command starts
(``state`` ``starting``, or ``started`` once the inputs and the code revision
are in it), and again when it ends (``finished``: exit status, duration,
outputs; fsynced).  Every reader (:class:`Records`) first moves those files
into ``records.sqlite``: finished ones, and those whose envgen is gone, are
then removed.  The run itself never opens the database, so its start and end
pay for neither SQLite nor the syncs of its write-ahead log.  ``owner`` names
the envgen process of the run (pid, its start time, the boot and the node),
so a record left ``starting``/``started`` by an envgen that no longer exists,
e.g. one killed with SIGKILL, reads as ``killed`` (:func:`status`), never as a
run in progress and never as a success.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import formats
from ..errors import EnvgenError, FormatError
from ..values import Value
from .launch import (  # noqa: F401  (the facts and states of a record, re-exported)
    ABANDONED,
    FINISHED,
    PENDING_KIND,
    STARTED,
    STARTING,
    boot_id,
    host_facts,
    new_run_id,
    now_iso,
    owner_facts,
    process_start,
    write_journal,
)

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import sqlite3

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
    rerun_of TEXT,
    state TEXT,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS tags (run_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (run_id, tag));
CREATE TABLE IF NOT EXISTS comments (run_id TEXT NOT NULL, created TEXT NOT NULL, text TEXT NOT NULL);
"""
JSON_FIELDS = ("command", "binds", "env", "code", "inputs", "outputs", "host", "nondeterministic", "owner")
# columns added by each schema version (the reader migrates older databases in place)
ADDED = {2: (("state", "TEXT"), ("owner", "TEXT"))}

# Record.state: how far a run's record got (STARTING, STARTED, FINISHED, ABANDONED: see .launch)
# a record only moves forward: a reader never replaces a later state with an earlier one
RANK = {None: 0, STARTING: 0, STARTED: 1, FINISHED: 2, ABANDONED: 2}


class Record(Value):
    """One run's provenance record: the ``runs`` columns, its tags and comments.

    ``state``: STARTING, STARTED, FINISHED or ABANDONED (None in rows written
    before schema 2); ``owner``: the envgen process that ran it (pid, start:
    clock ticks after boot, boot id, node).
    """

    def __init__(self, id: str, started: str, runtime: str, command: list[str], binds: list[dict], network: bool,
                 env: dict, code: dict, inputs: dict, outputs: dict, host: dict, nondeterministic: dict,
                 duration: float | None = None, label: str | None = None, reason: str | None = None,
                 spec: str | None = None, env_name: str | None = None, builder: str | None = None,
                 snapshot_id: str | None = None, tree_digest: str | None = None, build_key: str | None = None,
                 workdir: str | None = None, exit_status: int | None = None, rerun_of: str | None = None,
                 state: str | None = None, owner: dict | None = None, tags: list[str] | None = None,
                 comments: list[dict] | None = None):
        self.id = id
        self.started = started
        self.runtime = runtime
        self.command = command
        self.binds = binds
        self.network = network
        self.env = env
        self.code = code
        self.inputs = inputs
        self.outputs = outputs
        self.host = host
        self.nondeterministic = nondeterministic
        self.duration = duration
        self.label = label
        self.reason = reason
        self.spec = spec
        self.env_name = env_name
        self.builder = builder
        self.snapshot_id = snapshot_id
        self.tree_digest = tree_digest
        self.build_key = build_key
        self.workdir = workdir
        self.exit_status = exit_status
        self.rerun_of = rerun_of
        self.state = state
        self.owner = owner
        self.tags: list[str] = tags if tags is not None else []
        self.comments: list[dict] = comments if comments is not None else []

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- a run's own record file


def write_pending(journal: Path, rec: Record, durable: bool = False) -> None:
    """Write *rec* as ``journal/<id>.json``, replacing the run's earlier one whole (:func:`.launch.write_journal`)."""
    doc = {**formats.header(PENDING_KIND), "record": {k: v for k, v in rec.__dict__.items() if k != "comments"}}
    write_journal(str(journal), rec.id, doc, durable)


def owner_alive(owner: dict | None) -> bool | None:
    """Whether the envgen process *owner* still runs: None when this machine cannot tell (another node)."""
    if not owner or owner.get("node") != os.uname().nodename:
        return None
    if owner.get("boot") != boot_id():
        return False  # rebooted since
    start = process_start(int(owner["pid"]))
    return start is not None and start == owner.get("start")


def status(rec: Record) -> str:
    """``finished``, ``running``, ``killed`` (its envgen is gone: no exit status, no outputs), ``abandoned``
    (envgen stopped with an error after the start) or ``incomplete`` (not finished, and whether its envgen
    still runs cannot be told here)."""
    if rec.state == FINISHED or (rec.state is None and rec.exit_status is not None):
        return "finished"
    if rec.state == ABANDONED:
        return "abandoned"
    if rec.state in (STARTING, STARTED):
        alive = owner_alive(rec.owner)
        return "running" if alive else "incomplete" if alive is None else "killed"
    return "incomplete"


class Records:
    """The run database (``records.sqlite`` in the store directory), with the runs' own files moved in."""

    def __init__(self, path: Path, journal: Path | None = None):
        import sqlite3

        from ..paths import StorePaths

        self.path = Path(path)
        self.journal = journal if journal is not None else StorePaths(self.path.parent).run_journal
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.row_factory = sqlite3.Row
        try:  # the common case, a database at this envgen's version, costs one read
            row = self.db.execute("SELECT value FROM meta WHERE key='schema-version'").fetchone()
        except sqlite3.OperationalError:
            row = None  # no meta table: a new database
        if row is None or formats.check("envgen-records", int(row["value"]), str(self.path)) != SCHEMA_VERSION:
            self._set_up()
        self.take_pending()

    def _set_up(self) -> None:
        """Create the tables, or bring an older schema up to this one (in one write transaction)."""
        self.db.execute("PRAGMA journal_mode=WAL")  # kept in the file: set once
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema-version'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('schema-version', ?)", (str(SCHEMA_VERSION),))
            else:
                version = formats.check("envgen-records", int(row["value"]), str(self.path))
                have = {r["name"] for r in self.db.execute("PRAGMA table_info(runs)")}
                for v in range(version + 1, SCHEMA_VERSION + 1):
                    for col, typ in ADDED.get(v, ()):
                        if col not in have:
                            self.db.execute(f"ALTER TABLE runs ADD COLUMN {col} {typ}")
                self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema-version'", (str(SCHEMA_VERSION),))
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise

    def take_pending(self) -> int:
        """Move the runs' own record files into the database; remove those that will not change again."""
        try:
            names = sorted(n for n in os.listdir(self.journal) if n.endswith(".json") and not n.startswith("."))
        except FileNotFoundError:
            return 0
        done: list[Path] = []
        with self.db:
            for name in names:
                f = self.journal / name
                try:
                    doc = json.loads(f.read_bytes())
                except FileNotFoundError:
                    continue  # taken by another reader meanwhile
                except ValueError:
                    raise FormatError(f"{f}: not an envgen run record (invalid JSON)",
                                      hint="move the file out of the way") from None
                rec = Record(**formats.check_doc(PENDING_KIND, doc, str(f))["record"])
                self._upsert(rec)
                if RANK[rec.state] == RANK[FINISHED] or owner_alive(rec.owner) is False:
                    done.append(f)  # final, or its envgen is gone: the database has it all
        for f in done:
            f.unlink(missing_ok=True)
        return len(names)

    def _upsert(self, rec: Record) -> None:
        cols = [k for k in rec.__dict__ if k not in ("tags", "comments")]
        vals = [json.dumps(getattr(rec, k), sort_keys=True) if k in JSON_FIELDS else getattr(rec, k) for k in cols]
        vals = [int(v) if isinstance(v, bool) else v for v in vals]
        rank = "CASE {} WHEN 'finished' THEN 2 WHEN 'abandoned' THEN 2 WHEN 'started' THEN 1 ELSE 0 END"
        self.db.execute(
            f"INSERT INTO runs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))}) ON CONFLICT(id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in cols if c != "id")
            + f" WHERE {rank.format('excluded.state')} >= {rank.format('runs.state')}", vals)
        for t in sorted(set(rec.tags)):
            self.db.execute("INSERT OR IGNORE INTO tags VALUES (?, ?)", (rec.id, t))

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
