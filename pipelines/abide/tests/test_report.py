"""The report subcommand."""

import os

import pandas as pd

from abide_helpers import run_cli


def test_report(run_a, capsys):
    status, out, err = run_cli(["report", run_a, "--top", "2"], capsys)
    assert status == 0, err
    cv = pd.read_csv(os.path.join(run_a, "cv_results.csv")).sort_values("rank_test_accuracy")
    lines = out.splitlines()
    assert lines[0].startswith("top 2 of 3 candidates by accuracy")
    best = cv.iloc[0]
    assert f"{best.mean_test_accuracy:.4f} ± {best.std_test_accuracy:.4f}" in lines[1]
    assert len([line for line in lines[1:] if "±" in line]) == 2
    with open(os.path.join(run_a, "report.png"), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    html = open(os.path.join(run_a, "report.html"), encoding="utf-8").read()
    assert "data:image/png;base64," in html and str(best["params"]) in html.replace("&#x27;", "'")


def test_report_on_empty_dir(tmp_path, capsys):
    status, _, err = run_cli(["report", tmp_path], capsys)
    assert status == 2 and "cv_results.csv" in err and len(err.strip().splitlines()) == 1
