"""`envgen run`'s own work, on the modules the interpreter has loaded before it runs a line of envgen.

A run's start-up is measured against bwrap started directly (issue 14,
docs/benchmarks.md): everything envgen imports on the way counts.  The
standard library's convenient layers cost more than the run's work itself
(on a slow VM: argparse 15 ms, subprocess 21, pathlib 16, json 14, most of it
``enum``, ``re`` and ``ipaddress``, which they import), so this module uses
only ``os``, ``sys``, ``time`` and the C modules under those layers
(``marshal``, ``_json``, ``_signal``, ``_thread``).  It holds the one
implementation of each step of a recorded run that the start-up pays for:

* the record's file (:func:`write_journal`, json's own C encoder), the host
  and process facts in it, the run id;
* the sandbox's argv (:func:`bwrap_argv`) and the command's lookup in the tree
  (:func:`find_command`);
* starting the command, recording the facts while it runs, and waiting for it,
  passing Ctrl-C on (:func:`start_and_wait`);
* the code revision, asked of git (:func:`code_revision`).

:mod:`envgen.run.execute` (every run) and :mod:`envgen.sandbox` (the builders
too) call these.  :func:`main` is the whole of `envgen run` for a tree whose
launch plan holds (:mod:`envgen.runtimes.plan`), with no writable bind, no
network and no GPU: the common case, and the benchmark's.  It parses its own
argv (:func:`parse`, which takes only what it is sure of and leaves everything
else, ``--help`` and every error included, to the argparse front end:
tests/test_run_startup.py keeps the two equal) and returns None when it
leaves the run to that front end, before doing anything.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # not typing's: this module imports nothing it does not run (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

# --------------------------------------------------------------------------- JSON, through json's own encoder


def _encoder():
    try:
        from _json import encode_basestring_ascii, make_encoder
    except ImportError:  # not CPython: the json module's own path
        import json

        return lambda doc: json.dumps(doc, sort_keys=True)

    def default(o):
        raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")

    # the arguments json.dumps(doc, sort_keys=True) gives the C encoder (json.encoder.JSONEncoder.iterencode)
    enc = make_encoder(None, default, encode_basestring_ascii, None, ": ", ", ", True, False, True)
    return lambda doc: "".join(enc(doc, 0))


dumps: Callable[[object], str] = _encoder()
"""``json.dumps(doc, sort_keys=True)``, the same bytes, without importing json (and re, and enum)."""


def write_journal(journal: str, run_id: str, doc: dict, durable: bool = False) -> None:
    """Write *doc* as ``journal/<run_id>.json``, replacing the run's earlier one whole (rename).

    ``durable`` also fsyncs the file and the directory: for the final record.
    Without it the file survives the process being killed, not a power cut.
    """
    data = dumps(doc).encode()
    final = os.path.join(journal, f"{run_id}.json")
    tmp = os.path.join(journal, f".{run_id}.json.{os.getpid()}.tmp")  # readers skip dot files
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileNotFoundError:
        os.makedirs(journal, exist_ok=True)
        fd = os.open(tmp, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    if durable:
        dfd = os.open(journal, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# --------------------------------------------------------------------------- facts a record holds


def new_run_id(now: float | None = None) -> str:
    """``YYYYmmdd-HHMMSS-xxxxxx`` (UTC): ids sort by time."""
    t = time.gmtime(time.time() if now is None else now)
    return time.strftime("%Y%m%d-%H%M%S-", t) + os.urandom(3).hex()


def now_iso() -> str:
    """The time now, UTC, to the millisecond: ``2025-01-01T00:00:00.000Z``."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns // 1_000_000 % 1000:03d}Z"


def host_facts() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:  # the first "model name" line: the file is long on big machines
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    u = os.uname()  # not `platform`: its import compiles dozens of regexes
    return {"kernel": u.release, "machine": u.machine, "cpu": cpu, "cores": os.cpu_count() or 0, "os": u.sysname}


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def process_start(pid: int) -> int | None:
    """When process *pid* started (clock ticks after boot), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # "pid (comm) state ppid …": comm may hold spaces and parentheses; field 22 is starttime
    return int(stat[stat.rindex(b")") + 2:].split()[19])


def owner_facts() -> dict:
    """This process, so that a later reader can tell a run in progress from one whose envgen was killed."""
    pid = os.getpid()
    return {"pid": pid, "start": process_start(pid), "boot": boot_id(), "node": os.uname().nodename}


def new_record(env: dict, command: list[str], binds: list[dict], network: bool, run_env: dict[str, str],
               nondeterministic: dict, spec: str | None, workdir: str, label: str | None = None,
               reason: str | None = None, tags: list[str] | (tuple[str, ...]) = (),
               rerun_of: str | None = None) -> dict:
    """A run's record before its command starts (the fields of envgen.run.records.Record, ``starting``):
    *env* holds the env's identity (runtime, env_name, builder, snapshot_id, tree_digest, build_key)."""
    return {
        "id": new_run_id(), "started": now_iso(), "runtime": env["runtime"], "command": list(command),
        "binds": binds, "network": network, "env": run_env, "code": {}, "inputs": {}, "outputs": {},
        "host": host_facts(), "nondeterministic": nondeterministic, "duration": None, "label": label,
        "reason": reason, "spec": spec, "env_name": env["env_name"], "builder": env["builder"],
        "snapshot_id": env["snapshot_id"], "tree_digest": env["tree_digest"], "build_key": env["build_key"],
        "workdir": workdir, "exit_status": None, "rerun_of": rerun_of, "state": STARTING, "owner": owner_facts(),
        "tags": list(tags),
    }


def report(rec: dict, records: str, json_mode: bool, quiet: bool) -> None:
    """What `envgen run` says of a finished run: one JSON document on stdout (--json), else one line on stderr."""
    if json_mode:
        sys.stdout.write(dumps({"run": rec["id"], "exit_status": rec["exit_status"], "duration": rec["duration"],
                                "outputs": len(rec["outputs"]), "inputs": len(rec["inputs"]),
                                "tree_digest": rec["tree_digest"], "snapshot_id": rec["snapshot_id"],
                                "records": records}) + "\n")
    elif not quiet:
        sys.stderr.write(f"envgen: run {rec['id']} recorded (exit {rec['exit_status']}, {rec['duration']:.1f} s, "
                         f"{len(rec['inputs'])} inputs, {len(rec['outputs'])} outputs) in {records}\n")


# --------------------------------------------------------------------------- the sandbox


def which(name: str) -> str | None:
    """shutil.which for a plain name, without importing shutil."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        p = os.path.join(d or os.curdir, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def bwrap_argv(bwrap: str, root: str, command: list[str], *, env: dict[str, str], writable_root: bool = False,
               network: bool = False, binds: Sequence[tuple[str, str, bool]] = (), cwd: str = "/",
               extra: Sequence[str] = ()) -> list[str]:
    """bwrap's argv that runs *command* with the tree *root* as ``/``; *binds*: (host path, path inside, writable).

    *env* is the whole environment (bwrap clears the caller's).  With a
    read-only root, ``/`` is a tmpfs holding read-only binds of the tree's
    top-level entries, so that bind destinations the tree lacks can be made,
    and ``--remount-ro /`` makes the whole of ``/`` read-only again.
    """
    args = [bwrap, "--die-with-parent", "--unshare-all"]
    if network:
        args.append("--share-net")
    if writable_root:
        args += ["--bind", root, "/"]
    else:
        args += ["--tmpfs", "/"]
        for entry in sorted(os.listdir(root)):
            if entry in ("proc", "dev", "tmp"):
                continue
            full = os.path.join(root, entry)
            if os.path.islink(full):
                args += ["--symlink", os.readlink(full), f"/{entry}"]
            else:
                args += ["--ro-bind", full, f"/{entry}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    if network:
        for f in ("/etc/resolv.conf", "/etc/hosts"):
            if os.path.exists(f) and os.path.exists(os.path.join(root, f.lstrip("/"))):
                args += ["--ro-bind", f, f]
    for src, dst, writable in binds:
        args += ["--bind" if writable else "--ro-bind", src, dst]
    args += extra
    if not writable_root:
        args += ["--remount-ro", "/"]
    args += ["--clearenv"]
    for k, v in env.items():
        args += ["--setenv", k, v]
    return [*args, "--chdir", cwd, "--", *command]


def resolve_in_tree(rootfs: str, path: str) -> str | None:
    """The host path of *path* (absolute, inside the env) with the tree's symlinks followed inside the tree;
    None when it is not an executable file there."""
    full = os.path.join(rootfs, path.lstrip("/"))
    for _ in range(40):
        if not os.path.islink(full):
            break
        target = os.readlink(full)
        full = os.path.join(rootfs, target.lstrip("/")) if target.startswith("/") else \
            os.path.join(os.path.dirname(full), target)
    return full if os.path.isfile(full) and os.access(full, os.X_OK) else None


def find_command(rootfs: str, argv0: str, path: str) -> str | None:
    """The command's path inside the env (searched on *path* when it has no slash), or None."""
    if "/" in argv0:
        return argv0 if resolve_in_tree(rootfs, argv0 if argv0.startswith("/") else "/" + argv0) else None
    for d in path.split(":"):
        p = f"{d.rstrip('/')}/{argv0}" if d else argv0
        if resolve_in_tree(rootfs, p):
            return p
    return None


# --------------------------------------------------------------------------- processes


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _not_passed_on() -> list[tuple]:
    """posix_spawn's actions that close the descriptors envgen was given beyond 0, 1 and 2 (its own are
    close-on-exec): a command gets only those three, as subprocess gives them, and no handle on the host."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    out = []
    for name in names:
        fd = int(name)
        try:
            if fd > 2 and os.get_inheritable(fd):
                out.append((os.POSIX_SPAWN_CLOSE, fd))
        except OSError:
            continue  # closed since (the listing's own)
    return out


def _spawn_reading(argv: list[str]) -> tuple[int, int]:
    """Start *argv* (found on PATH) with its stdout on a pipe and stderr on /dev/null: (pid, read end)."""
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[
            *_not_passed_on(), (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, null, 2)])
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
        os.close(null)
    return pid, r


def _output(started: tuple[int, int]) -> tuple[int, bytes]:
    pid, fd = started
    out = _read_all(fd)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), out


def code_revision(cwd: str) -> dict:
    """git commit of the working directory, plus a hash of uncommitted changes (tracked and untracked)."""
    def git(*args: str) -> tuple[int, int]:
        # --no-optional-locks: `status` must not rewrite the index (the run's launch plan watches it)
        return _spawn_reading(["git", "--no-optional-locks", "-C", cwd, *args])

    try:  # questions asked two at a time: this runs with every recorded command
        head, status = git("rev-parse", "HEAD", "--show-toplevel"), git("status", "--porcelain", "-z",
                                                                      "--untracked-files=all")
    except OSError:
        return {"vcs": None}
    (code, head_out), (_, changes) = _output(head), _output(status)
    if code != 0:
        return {"vcs": None}
    commit, top = head_out.decode().split("\n")[:2]
    if not changes:
        return {"vcs": "git", "commit": commit, "dirty": False, "changes_sha256": None}
    import hashlib  # only for a dirty work tree (and hashlib alone: this runs beside every recorded command)

    diff_job, others_job = git("diff", "HEAD", "--binary"), git("ls-files", "--others", "--exclude-standard", "-z")
    (_, diff), (_, others) = _output(diff_job), _output(others_job)
    h = hashlib.sha256(diff)
    for name in sorted(u for u in others.split(b"\0") if u):
        p = os.path.join(top, name.decode("utf-8", "surrogateescape"))
        h.update(b"\0" + name + b"\0")
        if os.path.isfile(p):
            with open(p, "rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").hexdigest().encode())
    return {"vcs": "git", "commit": commit, "dirty": True, "changes_sha256": h.hexdigest()}


def start_and_wait(argv: list[str], stdout_to_stderr: bool = False,
                   meanwhile: Callable[[], None] | None = None) -> tuple[int, float]:
    """Start *argv*, run *meanwhile* in a thread while it runs, wait for both: (exit status, seconds).

    The exit status is the command's, or 128+N when a signal N ended it.  Ctrl-C
    reaches the command (it shares the terminal) and is passed on to it as well;
    the command is never left running.  An exception from *meanwhile* (e.g. an
    unreadable input) kills the command and is raised once it is gone.
    """
    import _signal
    import _thread

    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ,
                         file_actions=[*_not_passed_on(), *([(os.POSIX_SPAWN_DUP2, 2, 1)] if stdout_to_stderr else [])],
                         # what Python ignores for itself, the command gets as the default (as subprocess does)
                         setsigdef=[s for s in (_signal.SIGPIPE, getattr(_signal, "SIGXFSZ", None)) if s])
    done = lock = None
    failed: list[BaseException] = []
    if meanwhile is not None:
        done = lock = _thread.allocate_lock()
        lock.acquire()

        def work() -> None:
            try:
                meanwhile()
            except BaseException as exc:  # the run stops: unrecorded runs are not kept
                failed.append(exc)
                try:
                    os.kill(pid, _signal.SIGKILL)
                except OSError:
                    pass
            finally:
                lock.release()

        _thread.start_new_thread(work, ())
    try:
        status = _wait(pid)
    finally:
        while done is not None:
            try:
                done.acquire()  # the facts are being written; the command has had its SIGINT already
                done = None
            except KeyboardInterrupt:
                continue
    duration = round(time.perf_counter() - t0, 3)
    if failed:
        raise failed[0]
    return (status if status >= 0 else 128 - status), duration


def _wait(pid: int) -> int:
    """Wait for process *pid*, passing Ctrl-C on to it; never leave it running: its exit code (-N: signal N)."""
    import _signal

    try:
        while True:
            try:
                return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            except KeyboardInterrupt:
                os.kill(pid, _signal.SIGINT)
    except BaseException:
        try:
            os.kill(pid, _signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
        raise


# --------------------------------------------------------------------------- where things are

# a record's state (Record.state): how far its run got
STARTING = "starting"    # written, command being started; inputs and code revision not yet in it
STARTED = "started"      # inputs and code revision recorded; the command runs
FINISHED = "finished"    # exit status, duration and outputs recorded
ABANDONED = "abandoned"  # envgen stopped with an error after the start; the result is not recorded

PENDING_KIND = "envgen-pending-run"  # a run's own record file (records.d/<id>.json)

# inside a store (envgen.paths.StorePaths names them from here)
JOURNAL_DIR = "records.d"
RECORDS_DB = "records.sqlite"
RUN_CACHE_DIR = os.path.join("cache", "run")


def store_root(explicit: str | os.PathLike | None = None) -> str:
    """``--store``, else ``$ENVGEN_STORE``, else ``$XDG_DATA_HOME/envgen/store``."""
    if explicit:
        return os.fspath(explicit)
    if os.environ.get("ENVGEN_STORE"):
        return os.environ["ENVGEN_STORE"]
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "envgen", "store")


def cache_root() -> str:
    """``$ENVGEN_CACHE``, else ``$XDG_CACHE_HOME/envgen``."""
    if os.environ.get("ENVGEN_CACHE"):
        return os.environ["ENVGEN_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "envgen")


def netns_marker() -> str | None:
    """The file that says (``yes``/``no``) whether bwrap could make a network namespace on this boot."""
    boot = boot_id()
    return os.path.join(cache_root(), "probes", f"netns-{os.getuid()}-{boot}") if boot else None


def pure_path(p: str) -> str:
    """``str(pathlib.PurePosixPath(p))``: repeated slashes and ``.`` parts dropped, ``..`` kept."""
    lead = "//" if p.startswith("//") and not p.startswith("///") else "/" if p.startswith("/") else ""
    return lead + "/".join(x for x in p.split("/") if x and x != ".") or "."


# --------------------------------------------------------------------------- `envgen run`, from its launch plan

# `envgen run`'s options that this path takes, by kind, as envgen.commands.run defines them
FLAGS = {"-q": "quiet", "--quiet": "quiet", "--json": "json"}
VALUES = {"--store": "store", "--label": "label", "--reason": "reason", "--workdir": "workdir",
          "--variant": "variant", "--runtime": "runtime"}
REPEATED = {"--tag": "tag", "--bind": "bind"}


def parse(argv: list[str]) -> dict | None:
    """`envgen ARGV`'s options as the argparse front end gives them, when ARGV is `run SPEC [OPTION…] -- CMD…`
    with only the options above, each spelt out, values that do not start with ``-``, and the bwrap runtime;
    else None."""
    if len(argv) < 2 or argv[0] != "run" or "--" not in argv:
        return None
    cut = argv.index("--")
    opts: dict = {"json": False, "quiet": False, "store": None, "label": None, "reason": None, "workdir": None,
                  "variant": None, "runtime": "bwrap", "tag": [], "bind": [], "spec": None, "cmd": argv[cut + 1:]}
    words = argv[1:cut]
    i = 0
    while i < len(words):
        word = words[i]
        if word in FLAGS:
            opts[FLAGS[word]] = True
        elif word in VALUES or word in REPEATED:
            if i + 1 == len(words) or words[i + 1].startswith("-"):
                return None  # a missing value, or one argparse may take for an option: its call
            i += 1
            if word == "--runtime" and words[i] != "bwrap":
                return None  # another runtime (or none such): not this path's
            if word in VALUES:
                opts[VALUES[word]] = words[i]
            else:
                opts[REPEATED[word]].append(words[i])
        elif word.startswith("-") or opts["spec"] is not None:
            return None  # --help, an option spelt otherwise, another option or a second positional
        else:
            opts["spec"] = word
        i += 1
    return opts if opts["spec"] is not None else None


def parse_bind(text: str) -> tuple[str, str, bool]:
    """``SRC:DST[:ro|:rw]`` (read-write unless ``:ro``): (host path, resolved; path inside; writable)."""
    from ..errors import EnvgenError

    parts = text.split(":")
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        src, dst, mode = parts
    elif len(parts) == 2:
        src, dst, mode = parts[0], parts[1], "rw"
    else:
        raise EnvgenError(f"--bind {text!r}: expected SRC:DST or SRC:DST:ro")
    if not dst.startswith("/"):
        raise EnvgenError(f"--bind {text!r}: the destination must be an absolute path inside the env")
    full = os.path.expanduser(src)
    if not os.path.exists(full):
        raise EnvgenError(f"--bind {text!r}: the source {src} does not exist",
                          hint="bind an existing file or directory")
    return os.path.realpath(full), os.path.normpath(dst), mode == "rw"


def _ro_bind(text: str) -> tuple[str, str, bool] | None:
    """A read-only ``--bind``; None for anything else (writable, or an error, which the front end reports)."""
    from ..errors import EnvgenError

    try:
        bind = parse_bind(text)
    except EnvgenError:
        return None
    return None if bind[2] else bind


def main(argv: list[str]) -> int | None:
    """`envgen ARGV` when it is a run this path can take whole (see the module's doc); None, having done
    nothing, when it is not: the argparse front end takes it then."""
    opts = parse(argv)
    if opts is None:
        return None
    binds = []
    for text in opts["bind"]:
        bind = _ro_bind(text)
        if bind is None:
            return None
        binds.append(bind)
    from .. import formats
    from ..layout import BASE_ENV, DEFAULT_PATH, RUN_ENV
    from ..runtimes import plan

    root = store_root(opts["store"])
    doc = plan.read(root, "bwrap", opts["spec"], opts["variant"])
    marker = netns_marker()
    bwrap = which("bwrap")
    if doc is None or marker is None or bwrap is None:
        return None
    try:
        with open(marker) as fh:
            if fh.read() != "yes":
                return None
    except OSError:
        return None
    env, spec = doc["env"], doc["spec"]
    command = opts["cmd"] or (list(spec["command"]) if spec else [])
    if not command or find_command(env["rootfs"], command[0], DEFAULT_PATH) is None:
        return None  # the front end says why

    run_env = {**RUN_ENV, **(spec["run_env"] if spec else {})}
    workdir = opts["workdir"] or (spec["workdir"] if spec else None) or "/"
    argv_ = bwrap_argv(bwrap, env["rootfs"], command, env={**BASE_ENV, "HOME": "/tmp", **run_env}, binds=binds,
                       cwd=workdir)
    nondeterministic = {"files": list(spec["nondeterministic_files"]),
                        "columns": dict(spec["nondeterministic_columns"])} if spec else {}
    rec = new_record(env, command, [{"src": s, "dst": d, "mode": "ro"} for s, d, _ in binds], False, run_env,
                     nondeterministic, pure_path(opts["spec"]) if spec else opts["spec"],  # as RunSpec.path gives it
                     workdir, opts["label"], opts["reason"], opts["tag"])
    journal = os.path.join(root, JOURNAL_DIR)
    header = formats.header(PENDING_KIND)

    def save(durable: bool = False) -> None:
        write_journal(journal, rec["id"], {**header, "record": rec}, durable)

    def facts() -> None:  # while the command runs: it sees the inputs read-only and nothing else of the host
        if binds:
            from pathlib import Path

            from .execute import hash_tree

            for src, dst, _ in binds:
                rec["inputs"].update(hash_tree(Path(src), dst))
        rec["code"] = code_revision(os.getcwd())
        rec["state"] = STARTED
        save()

    sys.stdout.flush()
    save()  # the record exists before the command does
    try:
        rec["exit_status"], rec["duration"] = start_and_wait(argv_, opts["json"], facts)
    except BaseException:
        rec["state"] = ABANDONED
        save(durable=True)
        raise
    rec["state"] = FINISHED
    save(durable=True)
    report(rec, pure_path(os.path.join(root, RECORDS_DB)), opts["json"], opts["quiet"])
    return rec["exit_status"] or 0
