"""`envgen run` start-up (issue 14): the launch plan, its invalidation, the imports of a warm run, and a
record that survives its envgen being killed.

The first tests need no network: what a local project's listing is concluded from
(envgen/snapshot/srcpack.watched_listing) and when a plan may be kept
(envgen/runtimes/plan.Sources).  The rest run the tiny env (network the first time).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envgen.runtimes import plan
from envgen.snapshot import srcpack
from helpers import ENVGEN, run_envgen

GIT_ENV = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")


def _project(root: Path) -> None:
    """A local project with ignore rules, an ignored directory, a directory whose files are all ignored,
    an empty directory and bytecode."""
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("X = 1\n")
    (root / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"c")
    (root / ".gitignore").write_text("*.log\nout/\n")
    (root / "out").mkdir()
    (root / "out" / "res.txt").write_text("ignored\n")
    (root / "logs").mkdir()
    (root / "logs" / "a.log").write_text("ignored\n")
    (root / "empty").mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "1"\n')


def _stats(paths):
    return {p: plan._stat(p) for p in paths}


@pytest.mark.parametrize("mode", ["plain", "git"])
def test_watched_listing_sees_what_changes_the_listing_and_not_what_cannot(tmp_path, mode):
    root = tmp_path / "proj"
    root.mkdir()
    _project(root)
    if mode == "git":
        subprocess.run(["git", "init", "-q", str(root)], check=True, env=GIT_ENV)
        subprocess.run(["git", "-C", str(root), "add", "-A"], check=True, env=GIT_ENV)
    listed = srcpack.watched_listing(root)
    assert listed is not None
    files, watch = listed
    assert files == srcpack.list_files(root) == [".gitignore", "pkg/__init__.py", "pyproject.toml"]
    seen = watch + [str(root / f) for f in files]
    assert str(root / "out") not in watch  # ignored: not looked into
    before = _stats(seen)
    # churn that cannot change the listing: in an ignored directory, and bytecode
    (root / "out" / "more.txt").write_text("x\n")
    (root / "pkg" / "__pycache__" / "b.pyc").write_bytes(b"c")
    assert _stats(seen) == before
    # what can: a file in a directory whose files are all ignored, in an empty directory, at the top;
    # an edited ignore file; a mode change (the pack keeps the execute bit)
    for new in (root / "logs" / "keep.txt", root / "empty" / "new.py", root / "new.txt"):
        new.write_text("x\n")
        assert _stats(seen) != before, new
        before = _stats(seen)
    (root / ".gitignore").write_text("*.log\n")
    assert _stats(seen) != before
    before = _stats(seen)
    os.chmod(root / "pkg" / "__init__.py", 0o755)
    assert _stats(seen) != before


def test_a_repository_appearing_above_a_plain_project_is_seen(tmp_path):
    root = tmp_path / "a" / "proj"
    root.mkdir(parents=True)
    _project(root)
    files, watch = srcpack.watched_listing(root) or ([], [])
    before = _stats(watch)
    subprocess.run(["git", "init", "-q", str(tmp_path / "a")], check=True, env=GIT_ENV)
    assert _stats(watch) != before  # …/a/.git appeared: git now decides the listing


def test_sources_are_kept_only_when_unchanged_and_not_racy(tmp_path):
    f = tmp_path / "spec.toml"
    f.write_text("x = 1\n")
    fresh = plan.Sources([str(f), str(tmp_path / "absent")])
    assert not fresh.unchanged()  # just written: a second write in the same tick could go unseen
    time.sleep(plan.RACY_NS / 1e9 + 0.1)
    src = plan.Sources([str(f), str(tmp_path / "absent")])
    assert src.unchanged()
    os.chmod(f, 0o755)  # the mode alone
    assert not src.unchanged()
    src = plan.Sources([str(f), str(tmp_path / "absent")])
    (tmp_path / "absent").write_text("")  # a path that was absent appears
    assert not src.unchanged()


def _git(d: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(d), *args], check=True, capture_output=True, text=True,
                          env=GIT_ENV).stdout


def test_the_code_revision_names_the_commit_and_hashes_uncommitted_changes(tmp_path):
    """What a run records of the code it was started from: the commit, and for a dirty work tree the
    sha256 of `git diff HEAD --binary` followed by each untracked file's name and sha256."""
    from envgen.run import launch

    d = tmp_path / "proj"
    d.mkdir()
    _git(d, "init", "-q")
    (d / "a.py").write_text("A = 1\n")
    _git(d, "add", "a.py")
    _git(d, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    commit = _git(d, "rev-parse", "HEAD").strip()
    assert launch.code_revision(str(d)) == {"vcs": "git", "commit": commit, "dirty": False, "changes_sha256": None}

    (d / "a.py").write_text("A = 2\n")
    (d / "new.txt").write_bytes(b"untracked\n")
    rev = launch.code_revision(str(d / "."))
    h = hashlib.sha256(subprocess.run(["git", "-C", str(d), "diff", "HEAD", "--binary"], check=True,
                                      capture_output=True, env=GIT_ENV).stdout)
    h.update(b"\0new.txt\0" + hashlib.sha256(b"untracked\n").hexdigest().encode())
    assert rev == {"vcs": "git", "commit": commit, "dirty": True, "changes_sha256": h.hexdigest()}
    (d / "new.txt").write_bytes(b"changed\n")
    assert launch.code_revision(str(d))["changes_sha256"] != rev["changes_sha256"]
    assert launch.code_revision(str(tmp_path)) == {"vcs": None}  # not a work tree

    # it runs beside every recorded command: a dirty tree costs hashlib, not pathlib, json or envgen's helpers
    probe = ("import sys; from envgen.run import launch; before = set(sys.modules); "
             f"launch.code_revision({str(d)!r}); print(' '.join(sorted(set(sys.modules) - before)))")
    new = set(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True,
                             env=GIT_ENV).stdout.split())
    assert "hashlib" in new and not new & {"pathlib", "json", "envgen.fsutil", "subprocess", "shutil"}, new


# --------------------------------------------------------------------------- the tiny env (network)

HEAVY = ("envgen.lock", "envgen.spec", "envgen.builders", "msgspec", "packaging", "rich", "networkx", "tomlkit",
         "zstandard", "sqlite3", "dataclasses", "typing", "hashlib", "shutil", "tomllib")


def _imports(t, *args: str) -> set[str]:
    """The modules a run imports (python -X importtime), from a directory outside git (a dirty work tree
    would add hashlib, for the hash of its changes)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "envgen", "run", str(t.spec), "--store",
                           str(t.store), "-q", *args], capture_output=True, text=True, cwd=t.root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {ln.split("|")[2].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")
            and "|" in ln and not ln.rstrip().endswith("imported package")}


def _warm(t, *args: str) -> set[str]:
    """Run until the launch plan serves it (a plan is not written while a source is racy); its imports."""
    for _ in range(10):
        mods = _imports(t, *args)
        if "envgen.lock" not in mods:
            return mods
        time.sleep(1)
    raise AssertionError("the launch plan never served a run")


def _slow(mods: set[str]) -> bool:
    return "envgen.lock" in mods  # the spec and lock were read: no plan served this run


@pytest.mark.network
@pytest.mark.slow
def test_a_warm_run_starts_from_its_plan_without_heavy_imports(tiny):
    mods = _warm(tiny, "--", "python", "-c", "pass")
    assert not {m for m in mods if m.split(".")[0] in HEAVY or m in HEAVY}, sorted(mods)
    assert "envgen.runtimes.plan" in mods


@pytest.mark.network
@pytest.mark.slow
def test_a_changed_spec_is_not_served_by_a_stale_plan(tiny):
    _warm(tiny)
    original = tiny.spec.read_text()
    try:
        # the [run] table lives in the plan: a stale plan would run the old command
        tiny.spec.write_text(original.replace('command = ["hello"]', 'command = ["python", "-c", "print(42)"]'))
        proc = run_envgen("run", str(tiny.spec), "--store", str(tiny.store))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "42\n"
        assert "earlier version" in proc.stderr  # the lock is older than the spec, and says so every run
    finally:
        tiny.spec.write_text(original)
    proc = run_envgen("run", str(tiny.spec), "--store", str(tiny.store))
    assert proc.stdout.startswith("hello from /opt/env")


@pytest.mark.network
@pytest.mark.slow
def test_a_new_file_in_a_local_project_is_not_missed(tiny):
    new = tiny.root / "proj" / "hello" / "hello" / "extra.py"
    _warm(tiny)
    try:
        new.write_text("VALUE = 7\n")
        proc = run_envgen("run", str(tiny.spec), "--store", str(tiny.store), "--json", "--",
                          "python", "-c", "import hello.extra; print('extra', hello.extra.VALUE)")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["tree_digest"] != tiny.built["tree_digest"]
        assert "extra 7" in proc.stderr  # --json: the command's stdout goes to stderr
    finally:
        new.unlink()
    proc = run_envgen("run", str(tiny.spec), "--store", str(tiny.store), "--json", "--", "true")
    assert json.loads(proc.stdout)["tree_digest"] == tiny.built["tree_digest"]


@pytest.mark.network
@pytest.mark.slow
def test_a_rebuilt_or_removed_tree_is_not_served_by_a_stale_plan(tiny, tmp_path):
    import shutil

    store = tmp_path / "store"
    shutil.copytree(tiny.store / "objects", store / "objects")
    shutil.copytree(tiny.store / "roots", store / "roots")
    shutil.copy(tiny.store / "envgen-store.json", store / "envgen-store.json")
    t = type(tiny)(**{**tiny.__dict__, "store": store})
    _warm(t)
    assert not _slow(_imports(t))
    run_envgen("build", str(t.spec), "--store", str(store), "--force", check=True)  # the tree replaced
    assert _slow(_imports(t))
    assert not _slow(_imports(t))
    tree = Path(tiny.built["path"]).relative_to(tiny.store)
    for p in (store / tree.parent).rglob("*"):  # the tree removed (as gc would): rebuilt, not run from a plan
        if p.is_dir() and not p.is_symlink():
            os.chmod(p, 0o755)
    shutil.rmtree(store / tree.parent)
    proc = run_envgen("run", str(t.spec), "--store", str(store), "--json", "--", "true")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tree_digest"] == tiny.built["tree_digest"]
    assert (store / tree).is_dir()


@pytest.mark.network
@pytest.mark.slow
def test_dry_run_prints_the_sandbox_argv_and_records_nothing(tiny):
    before = json.loads(run_envgen("runs", "--store", str(tiny.store), "--json", check=True).stdout)["runs"]
    proc = run_envgen("run", str(tiny.spec), "--store", str(tiny.store), "--dry-run", "--json", "--",
                      "python", "-c", "print('same sandbox')")
    assert proc.returncode == 0, proc.stderr
    argv = json.loads(proc.stdout)["argv"]
    assert Path(argv[0]).name == "bwrap" and argv[-3:] == ["python", "-c", "print('same sandbox')"]
    direct = subprocess.run(argv, capture_output=True, text=True)
    assert direct.returncode == 0 and direct.stdout == "same sandbox\n"
    after = json.loads(run_envgen("runs", "--store", str(tiny.store), "--json", check=True).stdout)["runs"]
    assert len(after) == len(before)


def _runs(t) -> list[dict]:
    return json.loads(run_envgen("runs", "--store", str(t.store), "--json", check=True).stdout)["runs"]


def _wait_for(t, label: str, state: str, timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rec = next((r for r in _runs(t) if r["label"] == label), None)
        if rec is not None and rec["state"] == state:
            return rec
        time.sleep(0.2)
    raise AssertionError(f"no run {label!r} in state {state!r}")


def _children_with(marker: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if marker.encode() in cmd and b"envgen" not in cmd:
            out.append(int(pid))
    return out


@pytest.mark.network
@pytest.mark.slow
def test_a_run_whose_envgen_is_killed_leaves_its_record_marked_killed(tiny, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.txt").write_text("input\n")
    marker = f"sleeper-{os.getpid()}-{time.monotonic_ns()}"
    proc = subprocess.Popen([*ENVGEN, "run", str(tiny.spec), "--store", str(tiny.store), "--label", marker,
                             "--bind", f"{data}:/data:ro", "--", "python", "-c",
                             f"import time; time.sleep(120)  # {marker}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rec = _wait_for(tiny, marker, "started")  # inputs and code revision recorded while it runs
        assert rec["status"] == "running" and rec["exit_status"] is None
        assert set(rec["inputs"]) == {"/data/x.txt"} and rec["owner"]["pid"] == proc.pid
        assert _children_with(marker), "the command should be running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    end = time.monotonic() + 30
    while _children_with(marker) and time.monotonic() < end:  # bwrap --die-with-parent takes the command along
        time.sleep(0.1)
    assert not _children_with(marker)
    rec = next(r for r in _runs(tiny) if r["label"] == marker)
    assert rec["status"] == "killed" and rec["state"] == "started"
    assert rec["exit_status"] is None and rec["duration"] is None and rec["outputs"] == {}
    assert set(rec["inputs"]) == {"/data/x.txt"}  # what was recorded before the kill is kept
    assert not list((tiny.store / "records.d").glob(f"{rec['id']}.json"))  # moved into records.sqlite for good
    shown = run_envgen("runs", "--store", str(tiny.store), "show", rec["id"], check=True).stdout
    assert "KILLED" in shown and f"pid {proc.pid}" in shown and "no exit status" in shown
    listed = run_envgen("runs", "--store", str(tiny.store), check=True).stdout
    assert "killed" in listed
    rr = run_envgen("rerun", rec["id"], "--store", str(tiny.store))
    assert rr.returncode == 2 and "no result to compare with (killed" in rr.stderr
    assert rr.stderr.count("\n") == 1


@pytest.mark.network
@pytest.mark.slow
def test_the_record_of_a_normal_run_holds_what_it_always_held(tiny, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "params.txt").write_text("seed=3\n")
    out = tmp_path / "out"
    out.mkdir()
    for binds in ([f"{data}:/data:ro"], [f"{data}:/data:ro", f"{out}:/out"]):  # inputs hashed meanwhile; before
        args = [a for b in binds for a in ("--bind", b)]
        proc = run_envgen("run", str(tiny.spec), "--store", str(tiny.store), *args, "--label", "normal", "--json",
                          "--", "python", "-c", "print(open('/data/params.txt').read())")
        assert proc.returncode == 0, proc.stderr
        run_id = json.loads(proc.stdout)["run"]
        rec = next(r for r in _runs(tiny) if r["id"] == run_id)
        assert set(rec) == {
            "id", "started", "runtime", "command", "binds", "network", "env", "code", "inputs", "outputs", "host",
            "nondeterministic", "duration", "label", "reason", "spec", "env_name", "builder", "snapshot_id",
            "tree_digest", "build_key", "workdir", "exit_status", "rerun_of", "tags", "comments",
            "state", "owner", "status"}
        assert rec["state"] == "finished" and rec["status"] == "finished" and rec["exit_status"] == 0
        assert rec["inputs"] == {"/data/params.txt": {"sha256": hashlib.sha256(b"seed=3\n").hexdigest(), "size": 7}}
        assert rec["code"]["vcs"] in ("git", None) and rec["duration"] >= 0
        assert rec["spec"] == str(tiny.spec) and rec["workdir"] == "/"
        assert rec["env"]["PYTHONHASHSEED"] == "0" and rec["host"]["cores"] >= 1
    assert not list((tiny.store / "records.d").glob("*.json"))  # every finished record moved in


@pytest.mark.network
@pytest.mark.slow
def test_run_ends_its_process_only_when_it_is_the_program(tiny, capsys):
    """`envgen run` skips the interpreter's teardown (os._exit) as the program; called in-process, it returns."""
    from envgen.cli import main

    assert main(["run", str(tiny.spec), "--store", str(tiny.store), "-q", "--", "python", "-c", "exit(5)"]) == 5
    # as the program: the exit status and every byte of output still come through
    proc = run_envgen("run", str(tiny.spec), "--store", str(tiny.store), "--json", "--", "python", "-c",
                      "import sys; print('x' * 100000); sys.exit(4)")
    assert proc.returncode == 4 and json.loads(proc.stdout)["exit_status"] == 4
    assert proc.stderr.count("x" * 100000) == 1


# --------------------------------------------------------------------------- the quick path (envgen/run/launch.py)

# every option `envgen run` has, with a value where it takes one (those the quick path takes, and others)
_OPTIONS = [["-q"], ["--quiet"], ["--json"], ["--store", "/s"], ["--label", "l 1"], ["--reason", "why"],
            ["--workdir", "/w"], ["--variant", "cuda12"], ["--runtime", "bwrap"], ["--runtime", "podman"],
            ["--tag", "a"], ["--tag", "b"], ["--bind", "/x:/y:ro"], ["--bind", "/x:/z"], ["--network"], ["--gpu"],
            ["--dry-run"], ["--help"], ["--label=eq"], ["--lab", "abbrev"], ["--tag", "-neg"], ["--label"],
            ["extra-positional"]]
_FIELDS = ("json", "quiet", "store", "label", "reason", "workdir", "variant", "runtime", "tag", "bind", "spec", "cmd")


def _argparse_view(argv: list[str]) -> dict | None:
    """What the argparse front end makes of *argv* (None: it exits, e.g. help or an error)."""
    from envgen import cli

    try:
        args = cli._parse(list(argv))
    except SystemExit:
        return None
    return None if args is None else {k: getattr(args, k) for k in _FIELDS}


def test_the_quick_parser_reads_a_run_as_argparse_does_or_leaves_it_to_argparse(capsys):
    import itertools
    import random

    from envgen.run import launch

    rnd = random.Random(14)
    cases = [["run", "s.toml", "--", "python", "-c", "pass"], ["run", "s.toml", "--"], ["run", "--", "x"],
             ["run", "s.toml", "python"], ["runs", "--", "x"], ["run", "s.toml", "--", "a", "--", "--json"]]
    for opt in _OPTIONS:
        cases.append(["run", *opt, "s.toml", "--", "python", "-c", "pass"])
        cases.append(["run", "s.toml", *opt, "--", "true"])
    for n in (2, 3, 4):
        for combo in itertools.islice(itertools.combinations(_OPTIONS, n), 0, None, 7):
            words = [w for opt in rnd.sample(combo, len(combo)) for w in opt]
            cases.append(["run", *words[:2], "spec.toml", *words[2:], "--", "echo", "--label", "x"])
    taken = 0
    for argv in cases:
        quick = launch.parse(argv)
        if quick is None:
            continue
        taken += 1
        assert {k: quick[k] for k in _FIELDS} == _argparse_view(argv), argv
    capsys.readouterr()
    assert taken > 60  # the plain runs are taken, with every option the quick path knows
    for left in (["--help"], ["--label=eq"], ["--lab", "abbrev"], ["--dry-run"], ["--network"], ["--gpu"],
                 ["--tag", "-neg"]):
        assert launch.parse(["run", "s.toml", *left, "--", "true"]) is None, left
    assert launch.parse(["run", "s.toml", "python"]) is None  # no `--`: argparse's


def test_the_record_writer_writes_json_dumps_bytes():
    from envgen.run import launch

    doc = {"b": [1, 2.5, -0.0, 1e300, None, True, False], "a": {"é": "ü\u2028\n\"\\", "z": {}, "y": []},
           "record": {"command": ["python", "-c", "print('x')"], "duration": 0.123, "exit_status": 0}}
    assert launch.dumps(doc) == json.dumps(doc, sort_keys=True)
    with pytest.raises(TypeError):
        launch.dumps({"p": Path("/x")})


def test_pure_path_is_pathlib_s():
    from pathlib import PurePosixPath

    from envgen.run import launch

    for p in ("specs/abide.toml", "./specs//abide.toml", "specs/./a/../b.toml", "/abs/x/", "//net/x", "///x",
              ".", "./", "", "a", "../a/", "/"):
        assert launch.pure_path(p) == str(PurePosixPath(p)), p


@pytest.mark.network
@pytest.mark.slow
def test_a_quick_run_records_what_the_argparse_path_records(tiny, tmp_path):
    """The same run through envgen/run/launch.py and through the argparse front end (`--label=…` is left to
    argparse): the same record, but for what differs between any two runs."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("1\n")
    _warm(tiny, "--", "true")
    common = ["run", str(tiny.spec), "--store", str(tiny.store), "--bind", f"{data}:/data:ro", "--tag", "t", "--json"]
    cmd = ["--", "python", "-c", "import sys; print(open('/data/in.txt').read()); sys.exit(3)"]
    # without a bind, nothing beyond the interpreter's own start-up (the `-m` runner aside); with one, its
    # inputs are hashed by envgen's usual code, in the thread, while the command runs
    mods = _imports(tiny, "--", "true")
    assert not {"argparse", "json", "pathlib", "subprocess", "threading", "re", "enum"} & mods, sorted(mods)
    assert "argparse" not in _imports(tiny, *common[4:], "--label", "same", "--", "true")
    ids = []
    for label in (["--label", "same"], ["--label=same"]):
        proc = run_envgen(*common, *label, *cmd, cwd=tiny.root)
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr.startswith("1\n")  # --json: the command's stdout on stderr
        out = json.loads(proc.stdout)
        assert out["exit_status"] == 3 and out["inputs"] == 1 and out["outputs"] == 0
        ids.append(out["run"])
    quick, slow = (next(r for r in _runs(tiny) if r["id"] == i) for i in ids)
    differ = {"id", "started", "duration", "owner"}
    assert {k: v for k, v in quick.items() if k not in differ} == {k: v for k, v in slow.items() if k not in differ}
    assert quick["state"] == "finished" and quick["exit_status"] == 3 and quick["tags"] == ["t"]
    assert set(quick["inputs"]) == {"/data/in.txt"}


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("path", ["quick", "argparse"])
def test_ctrl_c_reaches_the_command_and_the_run_is_recorded_as_interrupted(tiny, path):
    """SIGINT to envgen (as a terminal's Ctrl-C, to envgen alone here) is passed on; the command ends with it,
    and the record says so (exit status 128+2), by either path."""
    _warm(tiny, "--", "true")
    marker = f"interrupted-{path}-{os.getpid()}-{time.monotonic_ns()}"
    label = ["--label", marker] if path == "quick" else [f"--label={marker}"]
    proc = subprocess.Popen([*ENVGEN, "run", str(tiny.spec), "--store", str(tiny.store), *label, "--", "python",
                             "-c", f"import time; time.sleep(120)  # {marker}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_for(tiny, marker, "started")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = next(r for r in _runs(tiny) if r["label"] == marker)
    assert rec["state"] == "finished" and rec["exit_status"] == 130
    assert not _children_with(marker)


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("path", ["quick", "argparse"])
def test_the_command_gets_no_descriptor_envgen_was_given(tiny, path):
    """A descriptor passed to envgen (here a pipe's write end) does not reach the command in the sandbox, by
    either path: it would be a handle on the host, and would keep the pipe open for as long as the command."""
    _warm(tiny, "--", "true")
    r, w = os.pipe()
    label = ["--label", "fds"] if path == "quick" else ["--label=fds"]
    try:
        proc = subprocess.run([*ENVGEN, "run", str(tiny.spec), "--store", str(tiny.store), "-q", *label, "--",
                               "python", "-c", "import os; print(sorted(os.listdir('/proc/self/fd')))"],
                              pass_fds=(w,), capture_output=True, text=True, timeout=120)
    finally:
        os.close(r)
        os.close(w)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "['0', '1', '2', '3']\n"  # the three, and the listing's own
