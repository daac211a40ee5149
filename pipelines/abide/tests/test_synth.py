"""The synthetic dataset: layout, sizes, QC behaviour and byte-determinism."""

import os

import numpy as np
import pytest

from abide_helpers import REAL_ROWS, SMALL_N, SMALL_SITES
from abide_pipeline import data, synth

QC_SITE_SIZES = {
    "CALTECH": 15, "CMU": 11, "KKI": 33, "LEUVEN_1": 28, "LEUVEN_2": 28, "MAX_MUN": 46, "NYU": 172,
    "OHSU": 25, "OLIN": 28, "PITT": 50, "SBL": 26, "SDSU": 27, "STANFORD": 25, "TRINITY": 44,
    "UCLA_1": 64, "UCLA_2": 21, "UM_1": 86, "UM_2": 34, "USM": 67, "YALE": 41,
}


def _tree_bytes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


def test_default_selection_mirrors_qc_abide():
    subjects = synth.select_subjects()
    kept = subjects[subjects.EXCLUSION == ""]
    assert len(kept) == 871
    assert (kept.DX_GROUP == 1).sum() == 403 and (kept.DX_GROUP == 2).sum() == 468
    assert kept.SITE_ID.value_counts().to_dict() == QC_SITE_SIZES
    assert subjects.SUB_ID.is_unique and subjects.SUB_ID.is_monotonic_increasing
    prefixes = set(kept.FILE_ID.str.rsplit("_", n=1).str[0])
    assert {"Pitt", "CMU_a", "CMU_b", "MaxMun_a", "MaxMun_b", "Leuven_1", "Caltech"} <= prefixes
    assert "Pitt_0050003" in set(kept.FILE_ID)


def test_header_is_the_real_one(small_dataset):
    path = os.path.join(small_dataset, "ABIDE_pcp", data.PHENOTYPIC_FILE)
    with open(path) as fh, open(REAL_ROWS) as real:
        assert fh.readline() == real.readline()


def test_layout_and_qc(small_dataset):
    df = data.read_phenotypic(small_dataset)
    assert len(df) == SMALL_N + 7
    assert (df.FILE_ID == "no_filename").sum() == 1
    kept = data.select_subjects(df, quality_checked=True)
    assert len(kept) == SMALL_N and set(kept.SITE_ID) == set(SMALL_SITES)
    assert len(data.select_subjects(df, quality_checked=False)) == SMALL_N + 6
    ds = data.load_dataset(small_dataset, quality_checked=False)  # every listed subject has a file
    lengths = {ts.shape[0] for ts in ds.time_series}
    assert all(100 <= t <= 300 for t in lengths)
    assert {ts.shape[1] for ts in ds.time_series} == {200}
    assert 0 < ds.y.sum() < len(ds.y)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kwargs = dict(n_subjects=16, sites=["PITT", "CMU"], n_excluded=3)
    synth.generate(str(tmp_path / "a"), seed=5, **kwargs)
    synth.generate(str(tmp_path / "b"), seed=5, **kwargs)
    synth.generate(str(tmp_path / "c"), seed=6, **kwargs)
    a, b, c = (_tree_bytes(tmp_path / k) for k in "abc")
    assert len(a) == 1 + 18  # CSV + 16 kept + 2 QC failures with files
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)  # CSV and every 1D file change with the seed


def test_all_strategies(tmp_path):
    synth.generate(str(tmp_path), seed=0, n_subjects=8, sites=["KKI", "YALE"], n_excluded=0, strategies=["all"])
    raw = data.load_dataset(str(tmp_path))
    for bp in (False, True):
        for gsr in (False, True):
            ds = data.load_dataset(str(tmp_path), band_pass_filtering=bp, global_signal_regression=gsr)
            assert len(ds.time_series) == 8
            if bp or gsr:
                assert not np.allclose(ds.time_series[0], raw.time_series[0])


def test_unknown_site_is_an_input_error():
    with pytest.raises(data.InputError, match="unknown site"):
        synth.select_subjects(20, ["NYU", "ATLANTIS"])
