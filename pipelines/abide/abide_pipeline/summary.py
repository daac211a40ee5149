"""A run's scores as one flat JSON object (``metrics.json``), for sweeps to collect.

The refit candidate is the one ranked first by the first ``rank_test_<metric>``
column of ``cv_results.csv`` (the first ``--scoring`` metric, which refits);
its ``mean_test_<metric>`` and ``std_test_<metric>`` for every metric are the
run's scores.  ``envgen sweep collect`` reads ``metrics.json`` from each point's
output directory without knowing anything about scikit-learn.
"""

from __future__ import annotations

import csv
import json
import os

from .data import InputError

METRICS_FILE = "metrics.json"


def refit_scores(cv_results_path: str) -> dict[str, float]:
    """``{mean_test_<m>: …, std_test_<m>: …}`` of the refit candidate in a ``cv_results.csv``."""
    try:
        with open(cv_results_path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise InputError(f"{cv_results_path} not found: is this the --output-dir of a finished run?") from None
    if not rows:
        raise InputError(f"{cv_results_path} has no candidates")
    ranks = [c for c in rows[0] if c.startswith("rank_test_")]
    if not ranks:
        raise InputError(f"{cv_results_path} has no rank_test_<metric> column")
    refit = ranks[0]
    best = min(range(len(rows)), key=lambda i: (int(float(rows[i][refit])), i))
    return {c: float(rows[best][c]) for c in rows[0] if c.startswith(("mean_test_", "std_test_"))}


def write_metrics(output_dir: str) -> dict[str, float]:
    """Write ``OUTPUT_DIR/metrics.json`` from ``OUTPUT_DIR/cv_results.csv``; return the scores."""
    scores = refit_scores(os.path.join(output_dir, "cv_results.csv"))
    with open(os.path.join(output_dir, METRICS_FILE), "w", encoding="utf-8") as fh:
        json.dump(scores, fh, sort_keys=True, indent=2)
        fh.write("\n")
    return scores


def main(args) -> None:
    for d in args.output_dir:
        scores = write_metrics(d)
        print(f"{os.path.join(d, METRICS_FILE)}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(scores.items())))
