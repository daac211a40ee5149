"""Sweeps: the grid, the job-array script, bad input, and a real SLURM cluster on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import os

import pytest

from envgen.errors import EnvgenError
from envgen.sweep.engine import sbatch_script
from envgen.sweep.grid import Param, expand, parse_param, point_command
from helpers import REPO, require_tool, run_envgen


def test_parse_param_ranges_and_lists():
    assert parse_param("random-state=0..3") == Param("random-state", ("0", "1", "2", "3"))
    assert parse_param("classifier=logistic,svm") == Param("classifier", ("logistic", "svm"))
    assert parse_param("seed=0,0") == Param("seed", ("0", "0"))  # a repeated value is a repeated point
    assert parse_param("x=-1..1").values == ("-1", "0", "1")
    for bad, why in [("nonsense", "NAME=VALUES"), ("=3", "not a parameter name"), ("a=", "empty value"),
                     ("a=1,,2", "empty value"), ("a=5..2", "empty"), ("9a=1", "not a parameter name")]:
        with pytest.raises(EnvgenError, match=why):
            parse_param(bad)


def test_expand_is_ordered_and_rejects_empty_or_duplicate_axes():
    grid = expand([parse_param("a=0..1"), parse_param("b=x,y")])
    assert grid == [{"a": "0", "b": "x"}, {"a": "0", "b": "y"}, {"a": "1", "b": "x"}, {"a": "1", "b": "y"}]
    with pytest.raises(EnvgenError, match="empty grid"):
        expand([])
    with pytest.raises(EnvgenError, match="twice"):
        expand([parse_param("a=1"), parse_param("a=2")])


def test_point_command_placeholders_and_appended_flags():
    cmd = point_command(["prog", "--output-dir", "{out}", "--seed={random-state}"],
                        {"random-state": "3", "classifier": "svm"}, "/out")
    assert cmd == ["prog", "--output-dir", "/out", "--seed=3", "--classifier", "svm"]


def test_sbatch_script_is_readable_and_complete(tmp_path):
    doc = {"id": "abc", "name": "abide", "params": ["random-state=0..1"], "spec": "/p/specs/abide.toml",
           "runtime": "bwrap", "store": "/s", "dir": str(tmp_path), "resources": {"time": "00:10:00", "mem": "2G"},
           "points": [{"index": i, "command": ["abide-pipeline", "--random-state", str(i)]} for i in range(2)]}
    text = sbatch_script(doc)
    assert text.startswith("#!/bin/bash\n")
    for line in ("#SBATCH --array=0-1", "#SBATCH --time=00:10:00", "#SBATCH --mem=2G",
                 f"#SBATCH --output={tmp_path}/logs/%A_%a.log", "#   1: abide-pipeline --random-state 1"):
        assert line in text
    assert 'sweep task' in text and '"$SLURM_ARRAY_TASK_ID"' in text


@pytest.mark.parametrize("args, message", [
    (["--param", "seed"], "NAME=VALUES"),
    ([], "empty grid"),
    (["--param", "seed=1..0"], "empty"),
])
def test_bad_sweeps_fail_cleanly(args, message):
    proc = run_envgen("sweep", str(REPO / "specs" / "abide.toml"), *args, "--", "abide-pipeline")
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unreachable_slurm_suggests_local(tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=none\nSlurmctldHost=nowhere(127.0.0.1)\nSlurmctldPort=9\nAuthType=auth/none\n"
                    "NodeName=x CPUs=1\nPartitionName=p Nodes=x\n")
    proc = run_envgen("sweep", str(REPO / "specs" / "abide.toml"), "--param", "seed=0..1", "--engine", "slurm",
                      "--", "abide-pipeline", env={"SLURM_CONF": str(conf)}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "SLURM" in proc.stderr and "--engine local" in proc.stderr and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- collect (generic: metrics.json)


def _sweep_with_metrics(tmp_path, metrics):
    """A sweep doc and status rows over a=0..1 x b=x,y; point i wrote metrics[i] (None: nothing; "failed")."""
    grid = [{"a": a, "b": b} for a in ("0", "1") for b in ("x", "y")]
    doc = {"dir": str(tmp_path), "points": [{"index": i, "params": p} for i, p in enumerate(grid)]}
    rows = []
    for i, p in enumerate(grid):
        pdir = tmp_path / "points" / str(i)
        pdir.mkdir(parents=True)
        m = metrics[i]
        if isinstance(m, dict):
            (pdir / "metrics.json").write_text(json.dumps(m))
        rows.append({"index": i, "params": p, "state": "failed" if m == "failed" else "completed",
                     "run_id": f"r{i}", "dir": str(pdir)})
    return doc, rows


def test_collect_gathers_metrics_files_into_a_csv(tmp_path):
    from envgen.sweep.collect import collect

    doc, rows = _sweep_with_metrics(tmp_path, [
        {"mean_loss": 0.5, "std_loss": 0.1, "n": 3, "note": "text", "ok": True},
        {"mean_loss": 0.25, "std_loss": 0.0, "n": 4},
        "failed",
        None,
    ])
    res = collect(doc, rows, plot_column=None)
    assert res["columns"] == ["point", "a", "b", "mean_loss", "n", "std_loss", "state", "run_id"]
    with open(tmp_path / "collected.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["mean_loss"] for r in table] == ["0.5", "0.25", "", ""]
    assert [r["state"] for r in table] == ["completed", "completed", "failed", "completed"]
    assert res["plot_column"] == "mean_loss"


def test_collect_plots_a_named_column_or_says_how_to(tmp_path, monkeypatch):
    import sys

    from envgen.sweep.collect import collect

    metrics = [{"mean_acc": 0.6 + i / 10, "std_acc": 0.01, "f1": 0.5} for i in range(4)]
    doc, rows = _sweep_with_metrics(tmp_path, metrics)
    with pytest.raises(EnvgenError, match="no column 'nope'"):
        collect(doc, rows, plot_column="nope")
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "matplotlib", None)  # as if not installed
        res = collect(doc, rows, plot_column="f1")
    assert res["plot"] is None and "envgen[plot]" in res["plot_hint"] and "\n" not in res["plot_hint"]
    assert (tmp_path / "collected.csv").is_file() and not (tmp_path / "collected.png").exists()
    pytest.importorskip("matplotlib")
    res = collect(doc, rows, plot_column="f1")
    assert res["plot"] == str(tmp_path / "collected.png") and res["plot_hint"] is None
    assert (tmp_path / "collected.png").stat().st_size > 1000


# --------------------------------------------------------------------------- real cluster


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    from slurm_cluster import SlurmCluster

    require_tool("slurmctld", "slurmd", "munged", "sbatch", "sinfo",
                 why="apt-get install slurmctld slurmd slurm-client munge")
    cluster = SlurmCluster()
    try:
        cluster.start()
    except RuntimeError as exc:
        cluster.stop()
        pytest.fail(str(exc))
    yield cluster
    cluster.stop()


def _scores(sweep_dir):
    with open(sweep_dir / "collected.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.network
@pytest.mark.slow
def test_abide_seed_sweep_on_slurm(slurm, abide, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    run_envgen("run", str(abide.spec), "--store", str(abide.store), "--bind", f"{data}:/data", "--",
               "abide-pipeline", "synth", "--out", "/data", "--seed", "1", "--n-subjects", "60",
               "--sites", "NYU,UM_1,USM,UCLA_1", check=True)
    sweep = tmp_path / "sweep"
    proc = run_envgen("sweep", str(abide.spec), "--store", str(abide.store), "--param", "random-state=0..3",
                      "--engine", "slurm", "--time", "00:20:00", "--bind", f"{data}:/data:ro", "--out", str(sweep),
                      "--wait", "900", "--json", "--", "abide-pipeline", "--input-dir", "/data",
                      "--output-dir", "{out}", "--num-folds", "3", "--write-metrics",
                      env={"SLURM_CONF": os.environ["SLURM_CONF"]},
                      timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["counts"] == {"completed": 4}
    assert len(result["jobs"]) == 1 and result["jobs"][0]["engine"] == "slurm"
    script = (sweep / "sweep.sbatch").read_text()
    assert "#SBATCH --array=0-3" in script and "#SBATCH --time=00:20:00" in script
    # the tasks ran under SLURM: one log per array task, and each was recorded
    logs = sorted(p.name for p in (sweep / "logs").iterdir())
    assert len(logs) == 4 and all(n.startswith(result["jobs"][0]["id"] + "_") for n in logs)
    st = json.loads(run_envgen("sweep", "status", str(sweep), "--store", str(abide.store), "--json",
                               env={"SLURM_CONF": os.environ["SLURM_CONF"]}, check=True).stdout)
    assert all(p["state"] == "completed" and p["run_id"] for p in st["points"])

    run_envgen("sweep", "collect", str(sweep), check=True)
    rows = _scores(sweep)
    assert [r["random-state"] for r in rows] == ["0", "1", "2", "3"]
    scores = [r["mean_test_accuracy"] for r in rows]
    assert len(set(scores)) == 4, scores  # a different seed gives a different score
    assert (sweep / "collected.png").stat().st_size > 1000

    # the same seed again (local engine, twice) gives the same score, to the last digit
    again = tmp_path / "again"
    proc = run_envgen("sweep", str(abide.spec), "--store", str(abide.store), "--param", "random-state=0,0",
                      "--engine", "local", "--bind", f"{data}:/data:ro", "--out", str(again), "--",
                      "abide-pipeline", "--input-dir", "/data", "--output-dir", "{out}", "--num-folds", "3",
                      "--write-metrics")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_envgen("sweep", "collect", str(again), check=True)
    repeat = [r["mean_test_accuracy"] for r in _scores(again)]
    assert repeat == [scores[0], scores[0]]


@pytest.mark.network
@pytest.mark.slow
def test_failed_task_is_reported_and_resubmitted(slurm, tiny, tmp_path):
    sweep = tmp_path / "sweep"
    env = {"SLURM_CONF": os.environ["SLURM_CONF"]}
    # point 1 fails (exit 3); the others succeed
    proc = run_envgen("sweep", str(tiny.spec), "--store", str(tiny.store), "--param", "code=0,3,0", "--engine", "slurm",
                      "--out", str(sweep), "--wait", "300", "--json", "--", "python", "-c",
                      "import sys; sys.exit({code})", env=env, timeout=600)
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    states = [p["state"] for p in result["points"]]
    assert states == ["completed", "failed", "completed"]
    failed = result["points"][1]
    assert failed["exit_status"] == 3 and failed["log"].endswith("_1.log")
    # fix the cause (the command reads a file that now exists) is not possible here; resubmitting reruns only point 1
    proc = run_envgen("sweep", "status", str(sweep), "--store", str(tiny.store), "--resubmit-failed", "--wait", "300",
                      "--json", env=env, timeout=600)
    doc = json.loads(proc.stdout)
    assert doc["jobs"][-1]["tasks"] == [1] and len(doc["jobs"]) == 2


@pytest.mark.network
@pytest.mark.slow
def test_impossible_resources_are_refused_clearly(slurm, tiny, tmp_path):
    proc = run_envgen("sweep", str(tiny.spec), "--store", str(tiny.store), "--param", "x=1", "--engine", "slurm",
                      "--mem", "100000G", "--out", str(tmp_path / "s"), "--", "true",
                      env={"SLURM_CONF": os.environ["SLURM_CONF"]})
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("envgen: error: SLURM refused the job") and "Memory" in last
    assert "Traceback" not in proc.stderr and not (tmp_path / "s").exists()
