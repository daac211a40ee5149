#!/usr/bin/env python3
"""Benchmark: the ABIDE pipeline's run time per runtime (issue 7).

The same pipeline run (synthetic data made inside the env, fixed seed) through
`envgen run --runtime bwrap` (the embedded runtime), `--runtime podman` (the OCI
image) and `--runtime sif` (the SIF's squashfs), interleaved, N rounds; each
runtime is warmed once first (image load, SIF unpack). Reports medians and the
ratio to bwrap. Needs the snapshot in the store.

Usage: .venv/bin/python bench/runtime_bench.py [--rounds 3] [--subjects 200] [--json OUT]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ENVGEN, REPO, medians, ratios, write_results

SPEC = str(REPO / "specs" / "abide.toml")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--subjects", type=int, default=200)
    ap.add_argument("--runtimes", default="bwrap,podman,sif")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="envgen-runtime-bench-"))
    data = work / "data"
    data.mkdir()
    subprocess.run([*ENVGEN, "run", SPEC, "--bind", f"{data}:/data", "--", "abide-pipeline", "synth", "--out", "/data",
                    "--seed", "1", "--n-subjects", str(args.subjects)], check=True, capture_output=True)
    runtimes = args.runtimes.split(",")
    times: dict[str, list[float]] = {r: [] for r in runtimes}

    def one(rt: str, i: int) -> float:
        out = work / f"out-{rt}-{i}"
        out.mkdir()
        t0 = time.perf_counter()
        subprocess.run([*ENVGEN, "run", SPEC, "--runtime", rt, "-q", "--bind", f"{data}:/data:ro",
                        "--bind", f"{out}:/out", "--", "abide-pipeline", "--input-dir", "/data", "--output-dir",
                        "/out", "--random-state", "0"], check=True, capture_output=True)
        return time.perf_counter() - t0

    for rt in runtimes:
        one(rt, -1)  # warm: build, export, load or unpack once
    for i in range(args.rounds):
        for rt in runtimes:
            times[rt].append(one(rt, i))
        print(f"round {i + 1}: " + ", ".join(f"{r} {v[-1]:.1f}s" for r, v in times.items()), file=sys.stderr)
    med = medians(times)
    same = len({(work / f"out-{r}-0" / "inputs.npz").read_bytes() for r in runtimes}) == 1
    res = {"median_s": med, "ratio_vs_bwrap": ratios(med, "bwrap", runtimes),
           "runs_s": times, "identical_inputs_npz": same, "subjects": args.subjects}
    write_results(res, args.json, name="runtime", baseline="bwrap")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
