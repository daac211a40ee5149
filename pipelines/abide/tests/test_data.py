"""QC filter and phenotype mapping on real ABIDE rows."""

import numpy as np
import pandas as pd
import pytest

from abide_pipeline import data

# From the 19 real rows in fixtures/phenotypic_real_rows.csv: rows the QC rules keep.
QC_KEPT = [50003, 50005, 50006, 50023, 50028, 50030, 50125, 50282, 50722, 50792, 51164]
NO_FILENAME = [50002, 50155]


def test_fixture_covers_the_cases(real_rows_dir):
    df = data.read_phenotypic(real_rows_dir)
    assert len(df) == 19
    assert set(df.qc_rater_1) == {"OK", "fail", "maybe"}
    assert "maybe" in set(df.qc_anat_rater_2) and "maybe" in set(df.qc_func_rater_2)
    assert df.qc_func_rater_2.isna().any()
    assert (df.FILE_ID == "no_filename").sum() == 2


def test_qc_filter_keeps_exactly_the_rule_abiding_rows(real_rows_dir):
    df = data.read_phenotypic(real_rows_dir)
    kept = data.select_subjects(df, quality_checked=True)
    assert kept.SUB_ID.tolist() == QC_KEPT


def test_without_qc_only_no_filename_rows_go(real_rows_dir):
    df = data.read_phenotypic(real_rows_dir)
    kept = data.select_subjects(df, quality_checked=False)
    assert sorted(kept.SUB_ID) == sorted(set(df.SUB_ID) - set(NO_FILENAME))


def test_phenotype_mapping(real_rows_dir):
    df = data.select_subjects(data.read_phenotypic(real_rows_dir), quality_checked=False)
    ph = data.map_phenotypes(df)
    assert ph.index.name == "SUB_ID"
    assert list(ph.columns) == data.PHENOTYPE_COLUMNS
    for col in ("SEX", "HANDEDNESS_CATEGORY", "EYE_STATUS_AT_SCAN", "DX_GROUP"):
        assert isinstance(ph[col].dtype, pd.CategoricalDtype), col
    # FIQ: -9999 and NaN become 100
    assert ph.loc[50125, "FIQ"] == 100.0  # -9999
    assert ph.loc[50722, "FIQ"] == 100.0  # NaN
    assert ph.loc[50003, "FIQ"] == 124.0
    # handedness
    expected = {
        50003: "RIGHT",
        50006: "LEFT",
        50030: "LEFT",  # -9999
        50282: "LEFT",  # NaN
        50792: "AMBIDEXTROUS",  # Mixed
        50727: "AMBIDEXTROUS",  # L->R
        51164: "AMBIDEXTROUS",  # Ambi
    }
    for sub, value in expected.items():
        assert ph.loc[sub, "HANDEDNESS_CATEGORY"] == value, sub
    assert ph.loc[50005, "SEX"] == "FEMALE" and ph.loc[50003, "SEX"] == "MALE"
    assert ph.loc[50003, "EYE_STATUS_AT_SCAN"] == "CLOSED" and ph.loc[50125, "EYE_STATUS_AT_SCAN"] == "OPEN"
    assert ph.loc[50003, "DX_GROUP"] == "ASD" and ph.loc[50030, "DX_GROUP"] == "CONTROL"
    assert ph.loc[50003, "AGE_AT_SCAN"] == pytest.approx(24.45)


def test_derived_arrays(real_rows_dir):
    df = data.select_subjects(data.read_phenotypic(real_rows_dir), quality_checked=True)
    ph = data.map_phenotypes(df)
    y, groups, factors, names = data.derived_arrays(ph)
    assert y.tolist() == [1 if v == "ASD" else 0 for v in ph.DX_GROUP]
    assert groups.dtype == object and groups.tolist() == ph.SITE_ID.tolist()
    sites = sorted(set(ph.SITE_ID))
    assert names[:2] == ["AGE_AT_SCAN", "FIQ"]
    assert names[2:] == (
        [f"SITE_ID_{s}" for s in sites[1:]]
        + ["SEX_MALE", "HANDEDNESS_CATEGORY_LEFT", "HANDEDNESS_CATEGORY_RIGHT", "EYE_STATUS_AT_SCAN_OPEN"]
    )
    assert factors.shape == (len(ph), len(names)) and factors.dtype == np.float64
    np.testing.assert_array_equal(factors[:, 0], ph.AGE_AT_SCAN.to_numpy())
    np.testing.assert_array_equal(factors[:, 1], ph.FIQ.to_numpy())
