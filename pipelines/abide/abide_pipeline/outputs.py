"""Writing the five output files deterministically."""

from __future__ import annotations

import zipfile

import joblib
import numpy as np
import pandas as pd
import yaml

#: fixed member timestamp (the earliest a zip file can hold), so equal arrays give equal bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

OUTPUT_FILES = ("args.yaml", "phenotypes.csv", "inputs.npz", "cv_results.csv", "model.joblib")


def write_args(path: str, args) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        yaml.dump(vars(args), fh, sort_keys=True, default_flow_style=False)


def write_phenotypes(path: str, phenotypes: pd.DataFrame) -> None:
    phenotypes.to_csv(path, lineterminator="\n")


def savez_deterministic(path: str, **arrays) -> None:
    """Like ``np.savez_compressed`` but byte-reproducible.

    ``np.savez_compressed`` stamps every zip member with the current time, so
    two runs at different seconds differ. This writes the same ``.npy``
    members (``allow_pickle=True`` for object arrays), deflated, with a fixed
    timestamp and permissions; ``np.load(path, allow_pickle=True)`` reads it.
    """
    with zipfile.ZipFile(path, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=True)


def write_cv_results(path: str, search) -> pd.DataFrame:
    frame = pd.DataFrame(search.cv_results_)
    frame.to_csv(path, index=False, lineterminator="\n")
    return frame


def write_model(path: str, search) -> None:
    joblib.dump(search, path, compress=9)
