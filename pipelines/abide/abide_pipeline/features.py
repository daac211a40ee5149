"""Connectivity features with nilearn's ConnectivityMeasure."""

from __future__ import annotations

import warnings

import numpy as np
from nilearn.connectome import ConnectivityMeasure

from .data import InputError

#: CLI name -> nilearn ``kind``.
FEATURE_KINDS = {
    "covariance": "covariance",
    "pearson": "correlation",
    "partial": "partial correlation",
    "tangent": "tangent",
    "precision": "precision",
}


def extract_features(time_series, kinds) -> np.ndarray:
    """Apply the measures in REVERSE list order; only the last applied vectorizes.

    ``["tangent", "pearson"]`` computes correlation matrices first, then feeds
    them to a tangent-space measure, which vectorizes its output with
    ``discard_diagonal=True`` (strict lower triangle, row-major: 19,900 values
    for 200 ROIs). Each measure is fitted on all subjects at once.
    """
    kinds = list(kinds)
    if not kinds:
        raise InputError("--feature-extraction needs at least one kind")
    unknown = [k for k in kinds if k not in FEATURE_KINDS]
    if unknown:
        raise InputError(f"unknown feature kind {unknown[0]!r} (choose from {', '.join(FEATURE_KINDS)})")
    data = time_series
    ordered = kinds[::-1]
    for i, kind in enumerate(ordered):
        last = i == len(ordered) - 1
        measure = ConnectivityMeasure(kind=FEATURE_KINDS[kind], vectorize=last, discard_diagonal=last)
        with warnings.catch_warnings():
            # nilearn announces future default changes; they do not affect these values.
            warnings.simplefilter("ignore", category=FutureWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            try:
                data = measure.fit_transform(data)
            except (ValueError, np.linalg.LinAlgError) as exc:
                raise InputError(f"feature extraction {kind!r} failed: {exc}".replace("\n", " ")) from None
        if not last:
            data = list(data)
    return np.asarray(data, dtype=np.float64)
