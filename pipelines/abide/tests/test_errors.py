"""Bad input: one line on stderr, exit status 2, no traceback."""

import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from abide_helpers import run_cli


def _assert_one_line_error(status, err, *needles):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _files(root):
    return sorted(glob.glob(os.path.join(root, "ABIDE_pcp", "cpac", "nofilt_noglobal", "*.1D")))


def test_missing_phenotypic_file(tmp_path, capsys):
    status, _, err = run_cli(["--input-dir", tmp_path, "--output-dir", tmp_path / "o"], capsys)
    _assert_one_line_error(status, err, "phenotypic file not found", "Phenotypic_V1_0b_preprocessed1.csv")
    assert not os.path.exists(tmp_path / "o")


def test_missing_1d_file(dataset_copy, tmp_path, capsys):
    victim = _files(dataset_copy)[3]
    os.remove(victim)
    status, _, err = run_cli(["--input-dir", dataset_copy, "--output-dir", tmp_path / "o"], capsys)
    _assert_one_line_error(status, err, os.path.basename(victim), "--no-quality-checked", "fetch_abide_pcp")


def test_wrong_column_count(dataset_copy, tmp_path, capsys):
    victim = _files(dataset_copy)[0]
    with open(victim) as fh:
        lines = fh.read().splitlines()
    with open(victim, "w") as fh:
        fh.write("\n".join("\t".join(line.split("\t")[:150]) for line in lines) + "\n")
    status, _, err = run_cli(["--input-dir", dataset_copy, "--output-dir", tmp_path / "o"], capsys)
    _assert_one_line_error(status, err, "malformed", os.path.basename(victim), "150 columns")


def test_ragged_rows(dataset_copy, tmp_path, capsys):
    victim = _files(dataset_copy)[1]
    with open(victim, "a") as fh:
        fh.write("1.0\t2.0\n")
    status, _, err = run_cli(["--input-dir", dataset_copy, "--output-dir", tmp_path / "o"], capsys)
    _assert_one_line_error(status, err, "malformed", os.path.basename(victim))


def test_nan_values(dataset_copy, tmp_path, capsys):
    victim = _files(dataset_copy)[2]
    ts = np.loadtxt(victim, skiprows=1)
    ts[5, 7] = np.nan
    np.savetxt(victim, ts, fmt="%.4f", delimiter="\t", header="x")
    status, _, err = run_cli(["--input-dir", dataset_copy, "--output-dir", tmp_path / "o"], capsys)
    _assert_one_line_error(status, err, "NaN", os.path.basename(victim))


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--atlas", "cc300"], "--atlas"),
        (["--feature-extraction", "pearson", "spearman"], "--feature-extraction"),
        (["--classifier", "forest"], "--classifier"),
    ],
)
def test_unknown_choices(small_dataset, tmp_path, capsys, flags, needle):
    with pytest.raises(SystemExit) as exc:
        run_cli(["--input-dir", small_dataset, "--output-dir", tmp_path / "o", *flags], capsys)
    err = capsys.readouterr().err
    _assert_one_line_error(exc.value.code, err, needle, "invalid choice")


def test_too_many_folds(small_dataset, tmp_path, capsys):
    status, _, err = run_cli(
        ["--input-dir", small_dataset, "--output-dir", tmp_path / "o", "--num-folds", "40"], capsys
    )
    _assert_one_line_error(status, err, "--num-folds 40", "smallest class")
    assert not os.path.exists(tmp_path / "o")


def test_too_many_sites_left_out(small_dataset, tmp_path, capsys):
    status, _, err = run_cli(
        ["--input-dir", small_dataset, "--output-dir", tmp_path / "o", "--split", "lpgo", "--num-folds", "3"], capsys
    )
    _assert_one_line_error(status, err, "number of sites (3)")


def test_console_script_exit_status(tmp_path):
    """The installed entry point (python -m) exits 2 with one stderr line."""
    proc = subprocess.run(
        [sys.executable, "-m", "abide_pipeline", "--input-dir", str(tmp_path), "--output-dir", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    _assert_one_line_error(proc.returncode, proc.stderr, "abide-site-adaptation-demo: error:")


def test_help_uses_original_prog(capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(["--help"], capsys)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: abide-site-adaptation-demo")
    assert "--no-quality-checked" in out and "(default: cc200)" in out
