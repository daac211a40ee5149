"""The summarise subcommand and --write-metrics: the refit candidate's scores as metrics.json."""

import json
import os
import shutil

import pandas as pd
from conftest import _run

from abide_helpers import run_cli
from abide_pipeline.outputs import OUTPUT_FILES


def test_summarise_writes_the_refit_candidates_scores(run_a, tmp_path, capsys):
    shutil.copy(os.path.join(run_a, "cv_results.csv"), tmp_path / "cv_results.csv")
    status, out, err = run_cli(["summarise", str(tmp_path)], capsys)
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    cv = pd.read_csv(tmp_path / "cv_results.csv", float_precision="round_trip")
    best = cv.loc[cv["rank_test_accuracy"].idxmin()]
    assert metrics == {"mean_test_accuracy": best.mean_test_accuracy, "std_test_accuracy": best.std_test_accuracy}
    assert "mean_test_accuracy" in out


def test_write_metrics_flag_matches_summarise(run_a, small_dataset, tmp_path, capsys):
    shutil.copy(os.path.join(run_a, "cv_results.csv"), tmp_path / "cv_results.csv")
    assert run_cli(["summarise", str(tmp_path)], capsys)[0] == 0
    out = _run(small_dataset, tmp_path / "out", 0, ["--write-metrics"])  # same seed as run_a
    assert sorted(os.listdir(out)) == sorted([*OUTPUT_FILES, "metrics.json"])
    assert (tmp_path / "out" / "metrics.json").read_bytes() == (tmp_path / "metrics.json").read_bytes()


def test_summarise_on_empty_dir(tmp_path, capsys):
    status, _, err = run_cli(["summarise", str(tmp_path)], capsys)
    assert status == 2 and "cv_results.csv" in err and len(err.strip().splitlines()) == 1
