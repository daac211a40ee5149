"""The main command: data -> connectivity features -> (MIDA +) classifier search -> outputs."""

from __future__ import annotations

import os
import time

import numpy as np
from joblib import parallel_config
from threadpoolctl import threadpool_limits

from . import outputs
from .data import load_dataset
from .features import extract_features
from .model import build_search, check_split


def run(args, stdout=None) -> dict:
    """Run the whole pipeline for parsed ``args``; returns a summary dict.

    Everything that can fail on bad input (data, features, split sizes, the
    search configuration) is checked before the output directory is touched.
    """
    timings = {}
    t0 = time.perf_counter()
    data = load_dataset(
        args.input_dir,
        atlas=args.atlas,
        band_pass_filtering=args.band_pass_filtering,
        global_signal_regression=args.global_signal_regression,
        quality_checked=args.quality_checked,
    )
    timings["load"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    features = extract_features(data.time_series, args.feature_extraction)
    timings["features"] = time.perf_counter() - t0

    check_split(args.split, args.num_folds, args.num_cv_repeats, data.y, data.groups)
    # ONE shared RandomState, passed to the classifier, the splitter and the search.
    random_state = np.random.RandomState(args.random_state)
    search = build_search(args, num_factors=data.factors.shape[1], random_state=random_state)

    out = args.output_dir
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    outputs.write_args(os.path.join(out, "args.yaml"), args)
    outputs.write_phenotypes(os.path.join(out, "phenotypes.csv"), data.phenotypes)
    if args.mida:
        arrays = {"x": features, "y": data.y, "groups": data.groups, "factors": data.factors}
        design = np.hstack([features, data.factors])  # factors ride along as the last columns
    else:
        arrays = {"X": features, "y": data.y, "groups": data.groups}
        design = features
    outputs.savez_deterministic(os.path.join(out, "inputs.npz"), **arrays)
    timings["write_inputs"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    fit_params = {"groups": data.groups} if args.split == "lpgo" else {}
    # Single-threaded BLAS in every fit: the per-fit work is small (L-BFGS-B on ~20k weights),
    # so threaded BLAS only adds contention, and a fixed thread count keeps results bit-stable.
    with threadpool_limits(limits=1, user_api="blas"), parallel_config(backend="loky", inner_max_num_threads=1):
        search.fit(design, data.y, **fit_params)
    timings["search"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    outputs.write_cv_results(os.path.join(out, "cv_results.csv"), search)
    outputs.write_model(os.path.join(out, "model.joblib"), search)
    if getattr(args, "write_metrics", False):
        from .summary import METRICS_FILE, write_metrics

        write_metrics(out)
        written = (*outputs.OUTPUT_FILES, METRICS_FILE)
    else:
        written = outputs.OUTPUT_FILES
    timings["write_results"] = time.perf_counter() - t0

    metric = args.scoring[0]
    best = search.best_index_
    results = search.cv_results_
    summary = {
        "metric": metric,
        "mean": float(results[f"mean_test_{metric}"][best]),
        "std": float(results[f"std_test_{metric}"][best]),
        "params": search.best_params_,
        "n_candidates": len(results["params"]),
        "n_splits": int(search.n_splits_),
        "n_subjects": int(len(data.y)),
        "n_features": int(features.shape[1]),
        "timings": timings,
        "output_dir": out,
        "files": list(written),
    }
    print(format_summary(summary), file=stdout, flush=True)
    return summary


def format_summary(s: dict) -> str:
    t = s["timings"]
    return "\n".join(
        [
            f"subjects: {s['n_subjects']}, features: {s['n_features']}, "
            f"candidates: {s['n_candidates']}, CV splits: {s['n_splits']}",
            f"best {s['metric']} (refit): {s['mean']:.4f} ± {s['std']:.4f}  params: {s['params']}",
            "timings: "
            + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()),
            f"outputs: {os.path.abspath(s['output_dir'])} ({', '.join(s.get('files', outputs.OUTPUT_FILES))})",
        ]
    )
