"""Sweeps: one env, one command template, a grid of parameter points.

A sweep lives in a directory::

    sweep.json          what to run: spec, store, runtime, binds, the points
    sweep.sbatch        the SLURM job-array script (engine slurm), readable and resubmittable
    points/NNN/         each point's output directory, bound at /out inside the env
    points/NNN/status.json   written by the task: running / completed / failed, exit status, run id
    logs/               one log per task

Every task runs `envgen sweep task DIR N`, which runs the point exactly as
`envgen run` would (same provenance record, tagged ``sweep:<id>``).  The local
engine runs those tasks in a bounded process pool; the SLURM engine submits
them as one job array and asks squeue/sacct and the records how they went.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import formats
from ..errors import EnvgenError, FormatError, ToolFailed
from ..fsutil import atomic_write, canonical_json
from ..proc import run as run_tool
from .grid import expand, parse_param, point_command

KIND = "envgen-sweep"
OUT_IN_ENV = "/out"
SBATCH_FLAGS = ("time", "cpus-per-task", "mem", "partition", "gres", "account", "qos")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def load(sweep_dir: str | Path) -> dict:
    d = Path(sweep_dir)
    p = d / "sweep.json"
    if not p.is_file():
        raise EnvgenError(f"{d}: not a sweep directory (no sweep.json)")
    try:
        doc = formats.load_json(KIND, p.read_bytes(), str(p))
    except FormatError as exc:
        raise type(exc)(exc.message, hint=exc.hint) from None
    doc["dir"] = str(d.resolve())
    return doc


def save(doc: dict) -> None:
    d = Path(doc["dir"])
    body = {k: v for k, v in doc.items() if k != "dir"}
    atomic_write(d / "sweep.json", json.dumps(body, sort_keys=True, indent=1) + "\n")


def create(spec_path: Path, store_root: Path, params: list[str], template: list[str], binds: list[str],
           runtime: str, engine: str, out_dir: Path | None, resources: dict[str, str], name: str,
           variant: str | None = None, gpu: bool = False) -> dict:
    grid = expand([parse_param(p) for p in params])
    if not template:
        raise EnvgenError("no command to sweep", hint="envgen sweep SPEC --param … -- CMD …")
    key = [str(spec_path), params, template, binds, runtime, variant, gpu, _now()]
    sweep_id = hashlib.sha256(canonical_json(key)).hexdigest()[:12]
    d = Path(out_dir) if out_dir else Path("sweeps") / f"{name}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if d.exists() and any(d.iterdir()):
        raise EnvgenError(f"{d}: exists and is not empty", hint="give a new --out directory")
    (d / "points").mkdir(parents=True, exist_ok=True)
    (d / "logs").mkdir(exist_ok=True)
    points = []
    width = max(3, len(str(len(grid) - 1)))
    for i, values in enumerate(grid):
        pdir = d / "points" / f"{i:0{width}d}"
        pdir.mkdir()
        points.append({"index": i, "params": values, "dir": str(pdir.resolve()),
                       "command": point_command(template, values, OUT_IN_ENV)})
    doc = {
        **formats.header(KIND), "id": sweep_id, "name": name, "created": _now(),
        "spec": str(spec_path.resolve()), "variant": variant, "gpu": gpu,
        "store": str(store_root.resolve()), "runtime": runtime, "engine": engine,
        "binds": binds, "params": params, "template": template, "resources": resources, "points": points,
        "jobs": [], "dir": str(d.resolve()),
    }
    save(doc)
    return doc


# --------------------------------------------------------------------------- one task


def status_path(point: dict) -> Path:
    return Path(point["dir"]) / "status.json"


def read_status(point: dict) -> dict | None:
    try:
        return json.loads(status_path(point).read_text())
    except (OSError, ValueError):
        return None


def run_task(sweep_dir: str | Path, index: int) -> int:
    """Run one point, as `envgen run` would, and write its status.json."""
    from ..run.execute import RunRequest, run_recorded
    from ..runtimes import prepare
    from ..sandbox import Bind
    from ..snapshot.store import open_store

    doc = load(sweep_dir)
    if not 0 <= index < len(doc["points"]):
        raise EnvgenError(f"sweep {doc['dir']} has no point {index} (it has {len(doc['points'])})")
    point = doc["points"][index]
    started = _now()
    atomic_write(status_path(point), json.dumps({"state": "running", "started": started, "host": os.uname().nodename,
                                                 "slurm_job": os.environ.get("SLURM_JOB_ID")}) + "\n")
    try:
        gpu = None
        if doc.get("gpu"):  # this host's GPUs (a SLURM node's), found where the point runs
            from ..gpu import require

            gpu = require()
        store = open_store(doc["store"])
        runtime, env, spec = prepare(store, doc["spec"], doc["runtime"], variant=doc.get("variant"))
        binds = [Bind.parse(b) for b in doc["binds"]] + [Bind(Path(point["dir"]), OUT_IN_ENV, True)]
        rec = run_recorded(store, runtime, env, RunRequest.for_spec(
            point["command"], binds, spec, doc["spec"], label=f"{doc['name']}[{index}]",
            reason=f"sweep {doc['id']}", tags=[f"sweep:{doc['id']}"], gpu=gpu))
    except EnvgenError as exc:  # the point could not start here (no GPU on this node, the store gone): failed
        atomic_write(status_path(point), json.dumps({
            "state": "failed", "exit_status": 2, "error": exc.message, "started": started, "finished": _now(),
            "host": os.uname().nodename, "slurm_job": os.environ.get("SLURM_JOB_ID")}, sort_keys=True) + "\n")
        raise
    state = "completed" if rec.exit_status == 0 else "failed"
    atomic_write(status_path(point), json.dumps({
        "state": state, "exit_status": rec.exit_status, "run_id": rec.id, "started": started, "finished": _now(),
        "duration": rec.duration, "host": os.uname().nodename, "slurm_job": os.environ.get("SLURM_JOB_ID"),
    }, sort_keys=True) + "\n")
    return rec.exit_status or 0


# --------------------------------------------------------------------------- engines


def envgen_argv() -> list[str]:
    return [sys.executable, "-m", "envgen"]


def run_local(doc: dict, indices: list[int], jobs: int, progress=None) -> list[int]:
    """Run the tasks in a bounded pool of processes; return their exit statuses."""
    def one(i: int) -> int:
        log = Path(doc["dir"]) / "logs" / f"local_{i}.log"
        with open(log, "wb") as fh:
            proc = subprocess.run([*envgen_argv(), "sweep", "task", doc["dir"], str(i)], stdout=fh,
                                  stderr=subprocess.STDOUT)
        if progress:
            progress(i, proc.returncode)
        return proc.returncode

    doc["jobs"].append({"engine": "local", "tasks": indices, "submitted": _now()})
    save(doc)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, indices))


def sbatch_script(doc: dict) -> str:
    res = doc["resources"]
    lines = [
        "#!/bin/bash",
        f"# envgen sweep {doc['id']}: {doc['name']}, {len(doc['points'])} points over {' '.join(doc['params'])}",
        f"# spec: {doc['spec']}" + (f" (variant {doc['variant']})" if doc.get("variant") else "")
        + f"   runtime: {doc['runtime']}" + ("   --gpu" if doc.get("gpu") else "") + f"   store: {doc['store']}",
        "#",
        "# Submit again by hand:           sbatch sweep.sbatch",
        "# Only some points (e.g. failed):  sbatch --array=1,3 sweep.sbatch",
        f"#SBATCH --job-name=envgen-{doc['name']}",
        f"#SBATCH --array=0-{len(doc['points']) - 1}",
        f"#SBATCH --output={doc['dir']}/logs/%A_%a.log",
        f"#SBATCH --chdir={doc['dir']}",
    ]
    for key in SBATCH_FLAGS:
        if res.get(key):
            lines.append(f"#SBATCH --{key}={res[key]}")
    lines += ["#", "# The points (each runs inside the env, its output directory bound at /out):"]
    for p in doc["points"]:
        lines.append(f"#   {p['index']}: {shlex.join(p['command'])}")
    lines += [
        "",
        "set -euo pipefail",
        f"exec {shlex.join(envgen_argv())} sweep task {shlex.quote(doc['dir'])} \"$SLURM_ARRAY_TASK_ID\"",
        "",
    ]
    return "\n".join(lines)


def _slurm(cmd: list[str], what: str) -> str:
    if not shutil.which(cmd[0]):
        raise EnvgenError(f"SLURM is not available here ({cmd[0]} not found)", hint="use --engine local")
    try:
        proc = run_tool(cmd, what, check=False, timeout=60)
    except ToolFailed:
        raise EnvgenError(f"SLURM is not reachable: {cmd[0]} got no answer in 60 s",
                          hint="use --engine local") from None
    if proc.returncode != 0:
        err = " ".join(proc.stderr.split())[:300]
        low = err.lower()
        if any(w in low for w in ("unable to contact", "connection refused", "socket timed out",
                                  "unable to establish", "could not open configuration", "slurm.conf")):
            raise EnvgenError(f"SLURM is not reachable: {err}", hint="check slurmctld, or use --engine local")
        raise EnvgenError(f"SLURM refused the job: {err}" if what == "sbatch" else f"{what} failed: {err}",
                          hint="check the resources (--time/--mem/--partition or the spec's [slurm] table)"
                          if what == "sbatch" else None)
    return proc.stdout


def check_slurm() -> None:
    """Fail early, with a hint, when no SLURM controller answers."""
    _slurm(["sinfo", "-h", "-o", "%P"], "sinfo")


def submit_slurm(doc: dict, indices: list[int] | None = None) -> str:
    script = Path(doc["dir"]) / "sweep.sbatch"
    atomic_write(script, sbatch_script(doc), mode=0o755)
    cmd = ["sbatch", "--parsable"]
    if indices is not None:
        cmd.append("--array=" + ",".join(str(i) for i in indices))
    out = _slurm(cmd + [str(script)], "sbatch")
    job = out.strip().split(";")[0]
    doc["jobs"].append({"engine": "slurm", "id": job,
                        "tasks": indices if indices is not None else list(range(len(doc["points"]))),
                        "submitted": _now()})
    save(doc)
    return job


def _squeue(job_ids: list[str]) -> dict[str, str]:
    """Array task -> state, for tasks the scheduler still knows ("JOB_TASK" keys)."""
    if not job_ids or not shutil.which("squeue"):
        return {}
    proc = run_tool(["squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", "%i %T"], "squeue", check=False, timeout=60)
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


def _sacct(job_ids: list[str]) -> dict[str, str]:
    if not job_ids or not shutil.which("sacct"):
        return {}
    proc = run_tool(["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "-o", "JobID,State"], "sacct",
                    check=False, timeout=60)
    if proc.returncode != 0:
        return {}  # no accounting storage configured
    out = {}
    for line in proc.stdout.splitlines():
        jid, _, state = line.partition("|")
        if "_" in jid and state:
            out[jid] = state.split()[0]
    return out


def status(doc: dict) -> list[dict]:
    """Per point: state (pending/running/completed/failed/unknown), exit status, run id, log path."""
    slurm_jobs = [j for j in doc["jobs"] if j.get("engine") == "slurm"]
    live = _squeue([j["id"] for j in slurm_jobs])
    acct = _sacct([j["id"] for j in slurm_jobs])
    rows = []
    for p in doc["points"]:
        i = p["index"]
        st = read_status(p)
        job = next((j for j in reversed(doc["jobs"]) if i in j.get("tasks", [])), None)
        log = None
        sched = None
        if job and job.get("engine") == "slurm":
            key = f"{job['id']}_{i}"
            sched = live.get(key) or acct.get(key)
            log = str(Path(doc["dir"]) / "logs" / f"{job['id']}_{i}.log")
        elif job:
            log = str(Path(doc["dir"]) / "logs" / f"local_{i}.log")
        if st and st.get("state") in ("completed", "failed"):
            state = st["state"]
        elif sched in ("PENDING", "CONFIGURING"):
            state = "pending"
        elif sched in ("RUNNING", "COMPLETING") or (st and st.get("state") == "running" and job and
                                                    job.get("engine") == "local"):
            state = "running"
        elif sched in ("TIMEOUT", "CANCELLED", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED"):
            state = "failed"
        elif job is None:
            state = "not submitted"
        elif job.get("engine") == "slurm" and sched is None:
            # gone from the queue without writing a result: killed (time limit, node, cancel)
            state = "failed"
        else:
            state = "unknown"
        rows.append({"index": i, "params": p["params"], "state": state, "scheduler": sched,
                     "exit_status": (st or {}).get("exit_status"), "run_id": (st or {}).get("run_id"),
                     "error": (st or {}).get("error"),
                     "log": log, "dir": p["dir"]})
    return rows


def wait(doc: dict, timeout: float, poll: float = 1.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = status(doc)
        if all(r["state"] in ("completed", "failed", "not submitted") for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(poll)


def failed_indices(doc: dict) -> list[int]:
    return [r["index"] for r in status(doc) if r["state"] == "failed"]
