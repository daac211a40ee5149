"""Run a command inside a built environment and record it."""

from __future__ import annotations

import hashlib
import os
import posixpath
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RunError
from ..fsutil import file_sha256
from ..layout import DEFAULT_PATH, RUN_ENV
from ..runtimes.base import Env, Launch, RunSpec, Runtime
from ..sandbox import Bind
from ..snapshot import Store
from .records import Record, Records, host_facts, new_run_id, now_iso


def hash_tree(src: Path, dst: str) -> dict[str, dict]:
    """{container path: {sha256, size}} for every regular file under a bind."""
    out: dict[str, dict] = {}
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


def code_revision(cwd: Path) -> dict:
    """git commit of the working directory, plus a hash of uncommitted changes (tracked and untracked)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True)

    try:  # the two questions asked at once: this runs before every recorded command
        procs = [subprocess.Popen(["git", "-C", str(cwd), *a], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                 for a in (("rev-parse", "HEAD", "--show-toplevel"), ("status", "--porcelain", "-z",
                                                                       "--untracked-files=all"))]
    except OSError:
        return {"vcs": None}
    (head_out, _), (status, _) = (p.communicate() for p in procs)
    if procs[0].returncode != 0:
        return {"vcs": None}
    commit, top = head_out.decode().split("\n")[:2]
    if not status:
        return {"vcs": "git", "commit": commit, "dirty": False, "changes_sha256": None}
    diff = git("diff", "HEAD", "--binary").stdout
    untracked = git("ls-files", "--others", "--exclude-standard", "-z").stdout.split(b"\0")
    h = hashlib.sha256(diff)
    for name in sorted(u for u in untracked if u):
        p = Path(top) / name.decode("utf-8", "surrogateescape")
        h.update(b"\0" + name + b"\0")
        if p.is_file():
            h.update(file_sha256(p).encode())
    return {"vcs": "git", "commit": commit, "dirty": True, "changes_sha256": h.hexdigest()}


def find_command(rootfs: Path, argv0: str, path: str = DEFAULT_PATH) -> str:
    """The command's path inside the env, or a one-line error if it is not there."""
    def exists(p: str) -> bool:
        full = rootfs / p.lstrip("/")
        # resolve symlinks inside the tree, not on the host
        for _ in range(40):
            if full.is_symlink():
                target = os.readlink(full)
                full = rootfs / target.lstrip("/") if target.startswith("/") else full.parent / target
                continue
            break
        return full.is_file() and os.access(full, os.X_OK)

    if "/" in argv0:
        if exists(argv0 if argv0.startswith("/") else "/" + argv0):
            return argv0
        raise RunError(f"command {argv0!r} not found inside the env")
    dirs = path.split(":")
    for d in dirs:
        if exists(posixpath.join(d, argv0)):
            return posixpath.join(d, argv0)
    raise RunError(f"command {argv0!r} not found inside the env (searched {path})",
                      hint="is it provided by a package in the spec's requirements?")


@dataclass
class RunRequest:
    """What to run and how to record it (everything but the env and the runtime)."""

    command: list[str]
    binds: list[Bind] = field(default_factory=list)
    network: bool = False
    env_vars: dict[str, str] = field(default_factory=dict)  # on top of RUN_ENV
    workdir: str | None = None
    label: str | None = None
    reason: str | None = None
    tags: list[str] = field(default_factory=list)
    spec: str | None = None  # the spec (or lock, or SIF) the env came from, as given
    nondeterministic: dict = field(default_factory=dict)
    rerun_of: str | None = None
    cwd: Path | None = None  # where the code revision is read (default: the working directory)
    stdout_to_stderr: bool = False  # for --json (stdout holds one JSON document) and reruns

    @classmethod
    def for_spec(cls, command: list[str], binds: list[Bind], spec: RunSpec | None, target: str,
                 **kw) -> RunRequest:
        """A request that takes the spec's [run] env, workdir and declared nondeterminism."""
        return cls(command=command, binds=binds, env_vars=dict(spec.run_env) if spec else {},
                   workdir=kw.pop("workdir", None) or (spec.workdir if spec else None),
                   spec=spec.path if spec else target, nondeterministic=spec.nondeterministic if spec else {}, **kw)


def run_recorded(store: Store, runtime: Runtime, env: Env, req: RunRequest) -> Record:
    """Run *req* in *env* with *runtime*; stream its output; record it; return the record."""
    find_command(env.rootfs, req.command[0])
    rec = _new_record(env, req)
    launch = Launch(command=list(req.command), env_vars=rec.env, binds=req.binds, network=req.network,
                    workdir=rec.workdir or "/")
    argv = runtime.argv(env, launch)
    before = {b.dst: _fingerprints(b.src) for b in req.binds if b.writable}
    records = Records(store.paths.records)
    try:
        records.add(rec)
        t0 = time.perf_counter()
        status = _wait(subprocess.Popen(argv, stdout=sys.stderr if req.stdout_to_stderr else None))
        rec.duration = round(time.perf_counter() - t0, 3)
        rec.exit_status = status if status >= 0 else 128 - status
        rec.outputs = _collect_outputs(store, req.binds, before)
        records.update_result(rec.id, outputs=rec.outputs, exit_status=rec.exit_status, duration=rec.duration)
    finally:
        records.close()
    return rec


def _new_record(env: Env, req: RunRequest) -> Record:
    inputs: dict[str, dict] = {}
    for b in req.binds:
        if not b.writable:
            inputs.update(hash_tree(b.src, b.dst))
    return Record(
        id=new_run_id(), started=now_iso(), runtime=env.runtime, command=list(req.command),
        binds=[{"src": str(b.src), "dst": b.dst, "mode": "rw" if b.writable else "ro"} for b in req.binds],
        network=req.network, env={**RUN_ENV, **req.env_vars}, code=code_revision(req.cwd or Path.cwd()),
        inputs=inputs, outputs={}, host=host_facts(), nondeterministic=req.nondeterministic or {}, label=req.label,
        reason=req.reason, spec=req.spec, env_name=env.env_name, builder=env.builder, snapshot_id=env.snapshot_id,
        tree_digest=env.tree_digest, build_key=env.build_key, workdir=req.workdir or "/", rerun_of=req.rerun_of,
        tags=list(req.tags),
    )


def _wait(proc: subprocess.Popen) -> int:
    """Wait for *proc*, passing Ctrl-C on to it; never leave it running."""
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                proc.send_signal(signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
