"""The ABIDE environment end to end (marked network + slow).

A copy of specs/abide.toml with the real pipeline is locked (fresh, so a .deb
superseded on the mirror since the committed lock cannot break the test),
snapshotted, archived, restored into an empty store with the network cut,
built offline, and the pipeline run inside it and rerun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_envgen

pytestmark = [pytest.mark.network, pytest.mark.slow]


def offline(*args: str) -> subprocess.CompletedProcess:
    """envgen with the network cut (a fresh network namespace: only lo, down)."""
    return subprocess.run(["unshare", "-n", sys.executable, "-m", "envgen", *args], capture_output=True, text=True)


def test_snapshot_twice_fetches_nothing_the_second_time(abide):
    assert abide.first["fetched"] > 60 and abide.first["fetched_bytes"] > 100e6
    again = json.loads(run_envgen("snapshot", str(abide.spec), "--store", str(abide.store), "--json",
                                  check=True).stdout)
    assert again["fetched"] == 0 and again["id"] == abide.first["id"]


def test_bundle_restores_offline_to_the_same_snapshot_and_env(abide, tmp_path):
    b1, b2 = tmp_path / "a.tar.zst", tmp_path / "b.tar.zst"
    run_envgen("archive", str(abide.spec), "--store", str(abide.store), "-o", str(b1), check=True)
    run_envgen("archive", str(abide.spec), "--store", str(abide.store), "-o", str(b2), check=True)
    assert b1.read_bytes() == b2.read_bytes()
    fresh, into = tmp_path / "store2", tmp_path / "restored"
    proc = offline("restore", str(b1), "--store", str(fresh), "--into", str(into))
    assert proc.returncode == 0, proc.stderr
    proc = offline("snapshot", str(into / "specs" / "abide.toml"), "--store", str(fresh), "--json")
    assert proc.returncode == 0, proc.stderr
    snap = json.loads(proc.stdout)
    assert snap["id"] == abide.first["id"] and snap["fetched"] == 0
    proc = offline("build", str(into / "specs" / "abide.toml"), "--store", str(fresh), "--json")
    assert proc.returncode == 0, proc.stderr
    restored_build = json.loads(proc.stdout)
    original = json.loads(run_envgen("build", str(abide.spec), "--store", str(abide.store), "--json",
                                     check=True).stdout)
    assert restored_build["tree_digest"] == original["tree_digest"]


def test_pipeline_runs_in_the_env_and_reruns_identically(abide, tmp_path):
    proc = run_envgen("run", str(abide.spec), "--store", str(abide.store), "--",
                      "python", "-c",
                      "import sklearn, nilearn, sys; print(sklearn.__version__, nilearn.__version__, sys.prefix)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1.6.1 0.11.1 /opt/env"
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    run_envgen("run", str(abide.spec), "--store", str(abide.store), "--bind", f"{data}:/data", "--",
               "abide-pipeline", "synth", "--out", "/data", "--seed", "1", "--n-subjects", "60", "--sites",
               "NYU,UM_1,USM,UCLA_1", check=True)
    proc = run_envgen("run", str(abide.spec), "--store", str(abide.store), "--json", "--bind", f"{data}:/data:ro",
                      "--bind", f"{out}:/out", "--", "abide-pipeline", "--input-dir", "/data", "--output-dir", "/out",
                      "--random-state", "0", "--num-folds", "3")
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run"]
    assert sorted(os.listdir(out)) == ["args.yaml", "cv_results.csv", "inputs.npz", "model.joblib", "phenotypes.csv"]
    rr = run_envgen("rerun", run_id, "--store", str(abide.store), "--json")
    assert rr.returncode == 0, rr.stdout + rr.stderr
    files = {Path(f["path"]).name: f["status"] for f in json.loads(rr.stdout)["comparison"]["files"]}
    assert files["inputs.npz"] == files["phenotypes.csv"] == files["args.yaml"] == "identical"
    assert files["cv_results.csv"] in ("identical", "identical-except-nondeterministic")
    assert files["model.joblib"].startswith("nondeterministic")
