"""Helpers shared by the ABIDE pipeline tests (imported by name, unlike conftest)."""

from __future__ import annotations

import os

from abide_pipeline.cli import main

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
REAL_ROWS = os.path.join(FIXTURES, "phenotypic_real_rows.csv")

SMALL_SITES = ["NYU", "UM_1", "USM"]
SMALL_N = 60
# a reduced search: 3 candidates x 3 folds
FAST_FLAGS = ["--num-search-iterations", "3", "--num-folds", "3"]


def run_cli(argv, capsys=None):
    """Run the console script in-process; returns (exit status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    if capsys is None:
        return status, "", ""
    captured = capsys.readouterr()
    return status, captured.out, captured.err
