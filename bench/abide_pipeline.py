#!/usr/bin/env python3
"""Benchmark: the ABIDE pipeline in the lab's full configuration.

Runs ``abide-pipeline --split skf --num-folds 10 --num-cv-repeats 5
--random-state 0`` (default search: logistic, random search, 10 candidates,
so 500 fits) on the default 871-subject synthetic set, once per
``--num-jobs`` value, and reports wall time, peak memory (max RSS of the
pipeline process and its children, from ``wait4``'s rusage) and where the
time goes (the pipeline prints per-phase timings: load, features, writing
inputs, search, writing results). The lab quotes about 10 minutes on one HPC
core.

Usage (any Python env with abide-pipeline installed, e.g. its dev venv):

    pipelines/abide/.venv/bin/python bench/abide_pipeline.py [--jobs 1 2] [--data DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile

from harness import timed_rss as timed  # noqa: E402

LAB_FLAGS = ["--split", "skf", "--num-folds", "10", "--num-cv-repeats", "5", "--random-state", "0"]


def cli(python: str) -> list:
    return [python, "-m", "abide_pipeline"]



def parse_timings(output: str) -> dict:
    match = re.search(r"^timings: (.*)$", output, flags=re.M)
    if not match:
        return {}
    return {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+)s", match.group(1))}


def parse_score(output: str) -> str:
    match = re.search(r"^best (.*)$", output, flags=re.M)
    return match.group(1) if match else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="--num-jobs values to time")
    ap.add_argument("--data", help="existing synthetic dataset (default: generate one with seed 0)")
    ap.add_argument("--python", default=sys.executable, help="interpreter with abide-pipeline installed")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="abide-bench-")
    results = {"config": LAB_FLAGS, "cpus": os.cpu_count(), "runs": []}
    try:
        data = args.data
        if data is None:
            data = os.path.join(tmp, "synth")
            r = timed(cli(args.python) + ["synth", "--out", data, "--seed", "0"])
            if r["rc"] != 0:
                print(r["output"], file=sys.stderr)
                return 1
            results["synth_wall_s"] = round(r["wall_s"], 1)
            print(f"synth (871 subjects): {r['wall_s']:.1f} s, max RSS {r['max_rss_mib']:.0f} MiB", flush=True)
        for jobs in args.jobs:
            out = os.path.join(tmp, f"out-j{jobs}")
            cmd = cli(args.python) + ["--input-dir", data, "--output-dir", out, *LAB_FLAGS, "--num-jobs", str(jobs)]
            r = timed(cmd)
            if r["rc"] != 0:
                print(r["output"], file=sys.stderr)
                return 1
            phases = parse_timings(r["output"])
            row = {
                "num_jobs": jobs,
                "wall_s": round(r["wall_s"], 1),
                "max_rss_mib": round(r["max_rss_mib"]),
                "phases_s": {k: round(v, 1) for k, v in phases.items()},
                "best": parse_score(r["output"]),
            }
            results["runs"].append(row)
            phase_text = ", ".join(f"{k} {v:.1f}s" for k, v in phases.items())
            print(
                f"--num-jobs {jobs}: wall {r['wall_s']:.1f} s, max RSS {r['max_rss_mib']:.0f} MiB; "
                f"{phase_text}; best {row['best']}",
                flush=True,
            )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
