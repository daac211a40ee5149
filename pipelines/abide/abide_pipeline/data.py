"""Reading ABIDE PCP data from the layout nilearn's ``fetch_abide_pcp`` leaves.

Nothing here downloads anything: every missing or malformed input raises
:class:`InputError`, which the CLI turns into a one-line message and exit 2.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

PHENOTYPIC_FILE = "Phenotypic_V1_0b_preprocessed1.csv"
PIPELINE = "cpac"

#: number of ROIs (columns of the 1D files) of every atlas ABIDE PCP ships.
ATLAS_ROIS = {
    "aal": 116,
    "cc200": 200,
    "cc400": 392,
    "dosenbach160": 161,
    "ez": 116,
    "ho": 111,
    "tt": 97,
}

#: QC rules of nilearn's ``fetch_abide_pcp(quality_checked=True)``.
QC_RULES = {
    "qc_rater_1": ("OK",),
    "qc_anat_rater_2": ("OK", "maybe"),
    "qc_func_rater_2": ("OK", "maybe"),
    "qc_anat_rater_3": ("OK",),
    "qc_func_rater_3": ("OK",),
}

PHENOTYPE_COLUMNS = [
    "SITE_ID",
    "SEX",
    "AGE_AT_SCAN",
    "FIQ",
    "HANDEDNESS_CATEGORY",
    "EYE_STATUS_AT_SCAN",
    "DX_GROUP",
]

SEX_MAP = {1: "MALE", 2: "FEMALE"}
EYE_MAP = {1: "OPEN", 2: "CLOSED"}
DX_MAP = {1: "ASD", 2: "CONTROL"}
HANDEDNESS_MAP = {
    "L": "LEFT",
    "R": "RIGHT",
    "Mixed": "AMBIDEXTROUS",
    "Ambi": "AMBIDEXTROUS",
    "L->R": "AMBIDEXTROUS",
    "R->L": "AMBIDEXTROUS",
}
LABEL_MAP = {"CONTROL": 0, "ASD": 1}


class InputError(Exception):
    """Bad user input or data; reported as one line on stderr with exit status 2."""


@dataclass
class Dataset:
    phenotypes: pd.DataFrame  # mapped phenotypes, indexed by SUB_ID
    time_series: list  # one (time points x ROIs) float array per subject
    y: np.ndarray
    groups: np.ndarray
    factors: np.ndarray
    factor_names: list


def strategy_name(band_pass_filtering: bool, global_signal_regression: bool) -> str:
    """``{no}filt_{no}global`` as used in the ABIDE PCP derivative folders."""
    return ("" if band_pass_filtering else "no") + "filt_" + ("" if global_signal_regression else "no") + "global"


def abide_root(input_dir: str) -> str:
    return os.path.join(input_dir, "ABIDE_pcp")


def read_phenotypic(input_dir: str) -> pd.DataFrame:
    path = os.path.join(abide_root(input_dir), PHENOTYPIC_FILE)
    if not os.path.isfile(path):
        raise InputError(
            f"phenotypic file not found: {path} (expected the layout of "
            "nilearn.datasets.fetch_abide_pcp(data_dir=INPUT_DIR, pipeline='cpac'))"
        )
    try:
        df = pd.read_csv(path)
    except Exception as exc:  # pandas raises many types for unreadable CSVs
        raise InputError(f"cannot read phenotypic file {path}: {exc}".replace("\n", " ")) from None
    required = {"SUB_ID", "FILE_ID"} | set(PHENOTYPE_COLUMNS) | set(QC_RULES)
    missing = sorted(required - set(df.columns))
    if missing:
        raise InputError(f"phenotypic file {path} lacks columns: {', '.join(missing)}")
    return df


def select_subjects(df: pd.DataFrame, quality_checked: bool) -> pd.DataFrame:
    """Drop rows without files and, if asked, rows failing the PCP quality checks."""
    keep = df["FILE_ID"].astype(str) != "no_filename"
    if quality_checked:
        for column, allowed in QC_RULES.items():
            keep &= df[column].isin(allowed)
    return df.loc[keep]


def _handedness(value) -> str:
    if isinstance(value, str):
        value = value.strip()
        if value in HANDEDNESS_MAP:
            return HANDEDNESS_MAP[value]
        try:
            value = float(value)
        except ValueError:
            raise InputError(f"unknown HANDEDNESS_CATEGORY value {value!r}") from None
    if value is None or pd.isna(value) or value == -9999:
        return "LEFT"
    raise InputError(f"unknown HANDEDNESS_CATEGORY value {value!r}")


def _mapped(series: pd.Series, mapping: dict, column: str) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce")
    out = values.map(mapping)
    bad = out.isna()
    if bad.any():
        raise InputError(f"unexpected {column} values: {sorted(set(series[bad].astype(str)))}")
    return out


def map_phenotypes(df: pd.DataFrame) -> pd.DataFrame:
    """Phenotype table as written to ``phenotypes.csv`` (indexed by SUB_ID)."""
    ph = df[["SUB_ID"] + PHENOTYPE_COLUMNS].copy().set_index("SUB_ID")
    fiq = pd.to_numeric(ph["FIQ"], errors="coerce")
    ph["FIQ"] = fiq.where(fiq.notna() & (fiq != -9999), 100.0)
    ph["AGE_AT_SCAN"] = pd.to_numeric(ph["AGE_AT_SCAN"], errors="coerce")
    ph["SEX"] = _mapped(ph["SEX"], SEX_MAP, "SEX").astype("category")
    ph["HANDEDNESS_CATEGORY"] = ph["HANDEDNESS_CATEGORY"].map(_handedness).astype("category")
    ph["EYE_STATUS_AT_SCAN"] = _mapped(ph["EYE_STATUS_AT_SCAN"], EYE_MAP, "EYE_STATUS_AT_SCAN").astype("category")
    ph["DX_GROUP"] = _mapped(ph["DX_GROUP"], DX_MAP, "DX_GROUP").astype("category")
    ph["SITE_ID"] = ph["SITE_ID"].astype(str)
    return ph


def derived_arrays(ph: pd.DataFrame):
    """``y`` (CONTROL 0 / ASD 1), ``groups`` (SITE_ID) and the domain ``factors``."""
    y = ph["DX_GROUP"].astype(str).map(LABEL_MAP).to_numpy(dtype=np.int64)
    groups = ph["SITE_ID"].to_numpy(dtype=object)
    dummies = pd.get_dummies(ph.drop(columns="DX_GROUP"), drop_first=True, dtype=np.float64)
    factors = dummies.to_numpy(dtype=np.float64)
    return y, groups, factors, list(dummies.columns)


def time_series_path(input_dir: str, file_id: str, atlas: str, strategy: str) -> str:
    return os.path.join(abide_root(input_dir), PIPELINE, strategy, f"{file_id}_rois_{atlas}.1D")


def read_1d(path: str, n_rois: int | None = None) -> np.ndarray:
    """Read one ROI time-series file (rows: time points, columns: ROIs)."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
            skip = 1 if first.lstrip().startswith("#") else 0
        data = np.loadtxt(path, skiprows=skip, ndmin=2, dtype=np.float64)
    except OSError as exc:
        raise InputError(f"cannot read time series {path}: {exc.strerror}") from None
    except ValueError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else "unparsable"
        raise InputError(f"malformed time series {path}: {msg}") from None
    if data.shape[0] < 2:
        raise InputError(f"malformed time series {path}: fewer than 2 time points")
    if n_rois is not None and data.shape[1] != n_rois:
        raise InputError(f"malformed time series {path}: {data.shape[1]} columns, expected {n_rois} ROIs")
    if not np.all(np.isfinite(data)):
        raise InputError(f"malformed time series {path}: contains NaN or infinite values")
    return data


def load_dataset(
    input_dir: str,
    atlas: str = "cc200",
    band_pass_filtering: bool = False,
    global_signal_regression: bool = False,
    quality_checked: bool = True,
) -> Dataset:
    if atlas not in ATLAS_ROIS:
        raise InputError(f"unknown atlas {atlas!r} (choose from {', '.join(ATLAS_ROIS)})")
    if not os.path.isdir(input_dir):
        raise InputError(f"input directory not found: {input_dir}")
    df = select_subjects(read_phenotypic(input_dir), quality_checked)
    if len(df) == 0:
        raise InputError("no subjects left after dropping no_filename rows" + (" and QC" if quality_checked else ""))
    strategy = strategy_name(band_pass_filtering, global_signal_regression)
    paths = [time_series_path(input_dir, fid, atlas, strategy) for fid in df["FILE_ID"].astype(str)]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        hint = (
            "fetch them with nilearn.datasets.fetch_abide_pcp(data_dir=INPUT_DIR, pipeline='cpac', "
            f"band_pass_filtering={band_pass_filtering}, global_signal_regression={global_signal_regression}, "
            f"derivatives=['rois_{atlas}'], quality_checked={quality_checked})"
        )
        hint += ", or check that --quality-checked/--no-quality-checked matches the subjects you fetched"
        raise InputError(
            f"missing time series for {len(missing)} of {len(paths)} listed subjects, first: {missing[0]}; {hint}"
        )
    n_rois = ATLAS_ROIS[atlas]
    time_series = [read_1d(p, n_rois) for p in paths]
    ph = map_phenotypes(df)
    y, groups, factors, names = derived_arrays(ph)
    return Dataset(ph, time_series, y, groups, factors, names)
