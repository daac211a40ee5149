#!/usr/bin/env python3
"""Benchmark: sweeps and verification (issue 8).

In one run, on the ABIDE env (specs/abide.toml; its snapshot must be in the store)
and a small synthetic dataset made inside it:

  * SLURM throughput: `envgen sweep --engine slurm` of N seeds against a
    hand-written sbatch array doing the same work (each task runs the env's
    python under bwrap directly, with no envgen and no records), on a one-node
    cluster on 127.0.0.1 started here;
  * parallel efficiency of 2 tasks on 2 cores against 1: the local engine with
    --jobs 1 and --jobs 2 over the same 2 points; efficiency = T(jobs=1) / (2 T(jobs=2));
  * `envgen verify` wall time on an ABIDE bundle with one recorded run, by stage.

Usage: .venv/bin/python bench/sweep_bench.py [--seeds 4] [--subjects 80] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from harness import ENVGEN  # noqa: E402

from slurm_cluster import SlurmCluster  # noqa: E402

SPEC = str(REPO / "specs" / "abide.toml")


def sh(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--subjects", type=int, default=200)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="envgen-sweep-bench-"))
    os.chmod(work, 0o755)
    built = json.loads(sh(*ENVGEN, "build", SPEC, "--json").stdout)
    data = work / "data"
    data.mkdir()
    sh(*ENVGEN, "run", SPEC, "--bind", f"{data}:/data", "--", "abide-pipeline", "synth", "--out", "/data",
       "--seed", "1", "--n-subjects", str(args.subjects))
    pipeline = ["abide-pipeline", "--input-dir", "/data", "--output-dir", "{out}", "--num-folds", "5"]
    result: dict = {"seeds": args.seeds, "subjects": args.subjects}

    # ------------------------------------------------------------ SLURM: envgen sweep vs hand-written array
    cluster = SlurmCluster().start()
    try:
        t0 = time.perf_counter()
        sh(*ENVGEN, "sweep", SPEC, "--param", f"random-state=0..{args.seeds - 1}", "--engine", "slurm",
           "--bind", f"{data}:/data:ro", "--out", str(work / "sw"), "--wait", "3600", "--", *pipeline,
           env=cluster.env)
        t_envgen = time.perf_counter() - t0
        hand = work / "hand"
        (hand / "logs").mkdir(parents=True)
        rootfs = built["path"]
        script = hand / "array.sbatch"
        script.write_text(f"""#!/bin/bash
#SBATCH --array=0-{args.seeds - 1}
#SBATCH --output={hand}/logs/%A_%a.log
set -euo pipefail
OUT={hand}/out_$SLURM_ARRAY_TASK_ID
mkdir -p $OUT
exec bwrap --unshare-all --die-with-parent --ro-bind {rootfs} / --proc /proc --dev /dev --tmpfs /tmp \\
  --ro-bind {data} /tmp/data --bind $OUT /tmp/out --clearenv --setenv PATH /opt/env/bin:/usr/bin:/bin \\
  --setenv PYTHONHASHSEED 0 --setenv HOME /tmp \\
  abide-pipeline --input-dir /tmp/data --output-dir /tmp/out --num-folds 5 --random-state $SLURM_ARRAY_TASK_ID
""")
        t0 = time.perf_counter()
        job = sh("sbatch", "--parsable", str(script), env=cluster.env).stdout.strip()
        while True:
            q = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True, env=cluster.env)
            if not q.stdout.strip():
                break
            time.sleep(0.5)
        t_hand = time.perf_counter() - t0
        ok = all((hand / f"out_{i}" / "cv_results.csv").is_file() for i in range(args.seeds))
        result["slurm"] = {"envgen_sweep_s": round(t_envgen, 2), "hand_array_s": round(t_hand, 2),
                           "ratio_envgen_vs_hand": round(t_envgen / t_hand, 3), "hand_complete": ok}
        print(f"slurm: envgen {t_envgen:.1f} s, hand-written {t_hand:.1f} s", file=sys.stderr)
    finally:
        cluster.stop()

    # ------------------------------------------------------------ parallel efficiency, local engine
    times = {}
    for jobs in (1, 2):
        t0 = time.perf_counter()
        sh(*ENVGEN, "sweep", SPEC, "--param", "random-state=0..1", "--engine", "local", "--jobs", str(jobs),
           "--bind", f"{data}:/data:ro", "--out", str(work / f"local{jobs}"), "--", *pipeline)
        times[jobs] = time.perf_counter() - t0
    result["local"] = {"jobs1_s": round(times[1], 2), "jobs2_s": round(times[2], 2),
                       "parallel_efficiency": round(times[1] / (2 * times[2]), 3)}
    print(f"local: jobs=1 {times[1]:.1f} s, jobs=2 {times[2]:.1f} s", file=sys.stderr)

    # ------------------------------------------------------------ verify, by stage
    out = work / "out"
    out.mkdir()
    run = json.loads(sh(*ENVGEN, "run", SPEC, "--json", "--bind", f"{data}:/data:ro", "--bind", f"{out}:/out", "--",
                        "abide-pipeline", "--input-dir", "/data", "--output-dir", "/out", "--random-state", "0").stdout)
    bundle = work / "abide.tar.zst"
    sh(*ENVGEN, "archive", SPEC, "--with-runs", "--run", run["run"], "-o", str(bundle))
    t0 = time.perf_counter()
    proc = subprocess.run(["unshare", "-n", *ENVGEN, "verify", str(bundle), "--json"], capture_output=True, text=True)
    t_verify = time.perf_counter() - t0
    v = json.loads(proc.stdout)
    result["verify"] = {"total_s": round(t_verify, 2), "stages_s": v["stages_s"], "level": v["level"],
                        "bundle_mb": round(bundle.stat().st_size / 1e6, 1)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
