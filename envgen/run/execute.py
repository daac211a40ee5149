"""Run a command inside a built environment and record it.

The order of a run (:func:`run_recorded`), so that it starts fast and no run
goes unrecorded:

1. the command is looked up in the tree and the sandbox argv made;
2. when the command could change files on the host (a writable bind, or the
   network), the read-only inputs are hashed and the code revision read now,
   before it starts;
3. the record is written (``starting``, or ``started`` when 2 happened), as
   the run's own file (:func:`.records.write_pending`, no SQLite, no fsync):
   from here on a killed envgen leaves a record that reads ``killed``;
4. the command starts.  When it can change nothing on the host (no writable
   bind, no network), the inputs and the code revision are recorded *while it
   runs*, by a thread: the sandbox shows it the inputs read-only and nothing
   else of the host, so what is hashed is what it reads, as before it started;
5. after it ends: exit status, duration, and the files it wrote under its
   writable binds (hashed, kept in the store); the record becomes
   ``finished`` (fsynced).  The next reader of the records moves it into
   ``records.sqlite``.

Each step that a run's start-up pays for is :mod:`.launch`'s (which also runs
a warm run whole, without this module: see there); this module adds what
only some runs need: writable binds and their outputs, the network, GPUs,
other runtimes, reruns.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from ..errors import RunError
from ..fsutil import file_sha256
from ..layout import DEFAULT_PATH, RUN_ENV
from ..runtimes.base import Env, Launch, RunSpec, Runtime
from ..values import Value
from . import launch
from . import records as rec_db
from .launch import owner_facts
from .records import Record, write_pending

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from ..gpu import GpuHost
    from ..sandbox import Bind
    from ..snapshot import Store


def hash_tree(src: Path, dst: str) -> dict[str, dict]:
    """{container path: {sha256, size}} for every regular file under a bind."""
    out: dict[str, dict] = {}
    try:
        if src.is_file():
            return {dst: {"sha256": file_sha256(src), "size": src.stat().st_size}}
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            for name in sorted(filenames):
                full = Path(dirpath) / name
                if full.is_symlink() or not full.is_file():
                    continue
                rel = full.relative_to(src).as_posix()
                out[posixpath.join(dst, rel)] = {"sha256": file_sha256(full), "size": full.stat().st_size}
    except OSError as exc:
        raise RunError(f"cannot read {exc.filename or src} (bound at {dst}): {exc.strerror}") from None
    return out


def _fingerprints(src: Path) -> dict[str, tuple[int, int, int]]:
    """{relative path: (size, mtime_ns, inode)} of the files under a writable bind, to tell what a run wrote."""
    if src.is_file():
        st = src.stat()
        return {".": (st.st_size, st.st_mtime_ns, st.st_ino)}
    out = {}
    for dirpath, _, filenames in os.walk(src):
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_file() and not full.is_symlink():
                st = full.stat()
                out[full.relative_to(src).as_posix()] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def find_command(rootfs: Path, argv0: str, path: str = DEFAULT_PATH) -> str:
    """The command's path inside the env, or a one-line error if it is not there."""
    found = launch.find_command(str(rootfs), argv0, path)
    if found is not None:
        return found
    if "/" in argv0:
        raise RunError(f"command {argv0!r} not found inside the env")
    raise RunError(f"command {argv0!r} not found inside the env (searched {path})",
                   hint="is it provided by a package in the spec's requirements?")


class RunRequest(Value):
    """What to run and how to record it (everything but the env and the runtime).

    ``env_vars`` go on top of RUN_ENV; ``spec`` is the spec (or lock, or SIF) the env
    came from, as given; ``cwd`` is where the code revision is read (default: the
    working directory); ``stdout_to_stderr`` is for --json (stdout holds one JSON
    document) and reruns.
    """

    def __init__(self, command: list[str], binds: list[Bind] | None = None, network: bool = False,
                 env_vars: dict[str, str] | None = None, workdir: str | None = None, label: str | None = None,
                 reason: str | None = None, tags: list[str] | None = None, spec: str | None = None,
                 nondeterministic: dict | None = None, rerun_of: str | None = None, cwd: Path | None = None,
                 stdout_to_stderr: bool = False, gpu: GpuHost | None = None):
        self.command = command
        self.binds: list[Bind] = binds if binds is not None else []
        self.network = network
        self.env_vars: dict[str, str] = env_vars if env_vars is not None else {}
        self.workdir = workdir
        self.label = label
        self.reason = reason
        self.tags: list[str] = tags if tags is not None else []
        self.spec = spec
        self.nondeterministic: dict = nondeterministic if nondeterministic is not None else {}
        self.rerun_of = rerun_of
        self.cwd = cwd
        self.stdout_to_stderr = stdout_to_stderr
        self.gpu = gpu  # the host's GPUs to show the command (envgen.gpu.require), None: no GPU

    @classmethod
    def for_spec(cls, command: list[str], binds: list[Bind], spec: RunSpec | None, target: str,
                 **kw) -> RunRequest:
        """A request that takes the spec's [run] env, workdir and declared nondeterminism."""
        return cls(command=command, binds=binds, env_vars=dict(spec.run_env) if spec else {},
                   workdir=kw.pop("workdir", None) or (spec.workdir if spec else None),
                   spec=spec.path if spec else target, nondeterministic=spec.nondeterministic if spec else {}, **kw)


def launch_argv(runtime: Runtime, env: Env, req: RunRequest) -> list[str]:
    """The argv that runs *req* in *env*: what run_recorded starts (``envgen run --dry-run`` prints it)."""
    if req.gpu is None or req.command[0] not in {b.name for b in req.gpu.bins}:  # nvidia-smi is the host's
        find_command(env.rootfs, req.command[0])
    launch = Launch(command=list(req.command), env_vars=_run_env(req), binds=req.binds, network=req.network,
                    workdir=req.workdir or "/", gpu=req.gpu)
    return runtime.argv(env, launch)


def run_recorded(store: Store, runtime: Runtime, env: Env, req: RunRequest) -> Record:
    """Run *req* in *env* with *runtime*; stream its output; record it; return the record."""
    argv = launch_argv(runtime, env, req)
    rec = _new_record(env, req)
    if req.gpu is not None:
        from ..gpu import facts

        rec.host["gpu"] = facts(req.gpu)  # model, driver and CUDA versions
    writable = [b for b in req.binds if b.writable]
    # Could the command change a file on the host?  Only through a writable bind (or, with the
    # network, through some service); if not, its inputs and the code revision are the same
    # before and while it runs, and are recorded while it runs.
    meanwhile = not writable and not req.network
    if not meanwhile:
        _pre_run_facts(rec, req)
    before = {b.dst: _fingerprints(b.src) for b in writable}
    journal = store.paths.run_journal
    rec.state = rec_db.STARTING if meanwhile else rec_db.STARTED
    rec.owner = owner_facts()
    write_pending(journal, rec)  # the record exists before the command does
    try:
        rec.exit_status, rec.duration = _start_and_wait(argv, req, rec, journal if meanwhile else None)
        rec.outputs = _collect_outputs(store, req.binds, before)
    except BaseException:
        rec.state = rec_db.ABANDONED
        write_pending(journal, rec, durable=True)
        raise
    rec.state = rec_db.FINISHED
    write_pending(journal, rec, durable=True)
    return rec


def _start_and_wait(argv: list[str], req: RunRequest, rec: Record, journal: Path | None) -> tuple[int, float]:
    """Start the command, record the pre-run facts meanwhile (*journal* given), wait: (exit status, seconds)."""
    def record_facts() -> None:
        assert journal is not None
        _pre_run_facts(rec, req)
        rec.state = rec_db.STARTED
        write_pending(journal, rec)

    return launch.start_and_wait(argv, req.stdout_to_stderr, record_facts if journal is not None else None)


def _run_env(req: RunRequest) -> dict[str, str]:
    return {**RUN_ENV, **req.env_vars}


def _pre_run_facts(rec: Record, req: RunRequest) -> None:
    """What the record says about the state before the run: the read-only inputs and the code revision."""
    inputs: dict[str, dict] = {}
    for b in req.binds:
        if not b.writable:
            inputs.update(hash_tree(b.src, b.dst))
    rec.inputs = inputs
    rec.code = launch.code_revision(str(req.cwd or Path.cwd()))


def _new_record(env: Env, req: RunRequest) -> Record:
    return Record(**launch.new_record(
        env.__dict__, req.command, [{"src": str(b.src), "dst": b.dst, "mode": "rw" if b.writable else "ro"}
                                    for b in req.binds],
        req.network, _run_env(req), req.nondeterministic or {}, req.spec, req.workdir or "/", req.label, req.reason,
        req.tags, req.rerun_of))


def _collect_outputs(store: Store, binds: list[Bind], before: dict) -> dict[str, dict]:
    """Every file the run wrote under its writable binds, hashed and kept as a store object."""
    outputs: dict[str, dict] = {}
    for b in binds:
        if not b.writable:
            continue
        after = _fingerprints(b.src)
        changed = {rel for rel, fp in after.items() if before[b.dst].get(rel) != fp}
        for path, info in hash_tree(b.src, b.dst).items():
            rel = posixpath.relpath(path, b.dst) if path != b.dst else "."
            if rel not in changed:
                continue  # there before the run, untouched: not an output of it
            host = b.src if b.src.is_file() else b.src / rel
            store.add_file(host, info["sha256"], label=path)
            outputs[path] = info
    return outputs
