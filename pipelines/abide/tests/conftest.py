"""Shared fixtures: small synthetic datasets and pipeline runs (no envgen, no network)."""

from __future__ import annotations

import os
import shutil

import pytest

from abide_helpers import FAST_FLAGS, REAL_ROWS, SMALL_N, SMALL_SITES  # noqa: F401
from abide_pipeline import synth
from abide_pipeline.cli import main


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    """60 QC-passing subjects over 3 sites plus 7 excluded rows (seed 1)."""
    root = tmp_path_factory.mktemp("synth_small")
    synth.generate(str(root), seed=1, n_subjects=SMALL_N, sites=SMALL_SITES, n_excluded=7)
    return str(root)


@pytest.fixture
def dataset_copy(small_dataset, tmp_path):
    """A private copy of the small dataset that a test may break."""
    dest = tmp_path / "data"
    shutil.copytree(small_dataset, dest)
    return str(dest)


@pytest.fixture(scope="session")
def real_rows_dir(tmp_path_factory):
    """An input dir whose phenotypic file holds 19 real ABIDE rows (no 1D files)."""
    root = tmp_path_factory.mktemp("real_rows")
    os.makedirs(root / "ABIDE_pcp")
    shutil.copy(REAL_ROWS, root / "ABIDE_pcp" / "Phenotypic_V1_0b_preprocessed1.csv")
    return str(root)


def _run(dataset, out, seed, extra=()):
    status = main(["--input-dir", dataset, "--output-dir", str(out), "--random-state", str(seed), *FAST_FLAGS, *extra])
    assert status == 0
    return str(out)


@pytest.fixture(scope="session")
def run_a(small_dataset, tmp_path_factory):
    return _run(small_dataset, tmp_path_factory.mktemp("run_a") / "out", 0)


@pytest.fixture(scope="session")
def run_b(small_dataset, tmp_path_factory):
    """Same inputs and seed as run_a."""
    return _run(small_dataset, tmp_path_factory.mktemp("run_b") / "out", 0)


@pytest.fixture(scope="session")
def run_other_seed(small_dataset, tmp_path_factory):
    return _run(small_dataset, tmp_path_factory.mktemp("run_c") / "out", 1)


@pytest.fixture(scope="session")
def run_mida(small_dataset, tmp_path_factory):
    return _run(
        small_dataset,
        tmp_path_factory.mktemp("run_mida") / "out",
        0,
        ["--mida", "--num-search-iterations", "2"],
    )
