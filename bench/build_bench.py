#!/usr/bin/env python3
"""Benchmark: the embedded builder and `envgen run` start-up (issue 4).

In one run, on the same snapshot (specs/abide.toml):
  * cold build: `envgen build --force` vs raw `uv pip install --offline --no-index
    --no-cache` of the same wheels into a fresh venv, vs `pip install --no-index`,
    and vs uv with --compile-bytecode (the embedded build also compiles the env's
    and the standard library's bytecode, and unpacks the Debian runtime);
  * warm build (cache hit);
  * `envgen run -- python -c pass` vs running the env's python under bwrap directly.

Needs the snapshot in the store (`envgen snapshot specs/abide.toml`).
Usage: .venv/bin/python bench/build_bench.py [--store DIR] [--repeat N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import harness  # noqa: E402
from harness import ENVGEN, medians, wheelhouse, write_results  # noqa: E402

from envgen.lock import pylock  # noqa: E402
from envgen.lock.resolve import uv_bin  # noqa: E402
from envgen.paths import store_dir  # noqa: E402

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd, **kw) -> float:
    return harness.timed(cmd, env=ENV, **kw)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default=str(store_dir()))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    spec = REPO / "specs" / "abide.toml"
    lock = pylock.load(REPO / "specs" / "pylock.abide.toml")
    store = Path(args.store)
    envgen = ENVGEN
    subprocess.run([*envgen, "build", str(spec), "--store", str(store), "-q"], check=True, env=ENV)

    work = Path(tempfile.mkdtemp(prefix="envgen-build-bench-"))
    wheels, req = wheelhouse(store, lock, work)
    uv = uv_bin()
    res: dict[str, list[float]] = {k: [] for k in ("envgen-cold", "uv", "uv-compile", "pip", "envgen-warm")}
    for i in range(args.repeat):
        res["envgen-cold"].append(timed([*envgen, "build", str(spec), "--store", str(store), "--force", "-q"]))
        for name, extra in (("uv", []), ("uv-compile", ["--compile-bytecode"])):
            venv = work / f"v-{name}-{i}"
            subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
            res[name].append(timed([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "--offline",
                                    "--no-index", "--no-cache", "--find-links", str(wheels), "--no-deps",
                                    "--require-hashes", "-r", str(req), *extra]))
        if i == 0:  # pip is slow: once
            venv = work / "v-pip"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            res["pip"].append(timed([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links",
                                     str(wheels), "--no-deps", "--require-hashes", "-r", str(req)]))
        res["envgen-warm"].append(timed([*envgen, "build", str(spec), "--store", str(store), "-q"]))
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in res.items() if v), file=sys.stderr)

    # run start-up overhead
    meta = json.loads(subprocess.run([*envgen, "build", str(spec), "--store", str(store), "--json"],
                                     capture_output=True, text=True, check=True, env=ENV).stdout)
    rootfs = meta["path"]
    direct = ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", rootfs, "/", "--proc", "/proc",
              "--dev", "/dev",
              "--tmpfs", "/tmp", "/opt/env/bin/python", "-c", "pass"]
    via = [*envgen, "run", str(spec), "--store", str(store), "-q", "--", "python", "-c", "pass"]
    true_via = [*envgen, "run", str(spec), "--store", str(store), "-q", "--", "true"]
    runs: dict[str, list[float]] = {"direct-python": [], "envgen-run-python": [], "envgen-run-true": []}
    for _ in range(15):
        runs["direct-python"].append(timed(direct))
        runs["envgen-run-python"].append(timed(via))
        runs["envgen-run-true"].append(timed(true_via))

    med = medians({**res, **runs})
    summary = {
        "median_s": med,
        "ratio_cold_build_vs_uv": med["envgen-cold"] / med["uv"],
        "ratio_cold_build_vs_uv_compile": med["envgen-cold"] / med["uv-compile"],
        "ratio_pip_vs_envgen_cold": med["pip"] / med["envgen-cold"],
        "run_overhead_ms": (med["envgen-run-python"] - med["direct-python"]) * 1000,
        "runs": {**res, **runs},
    }
    write_results(summary, args.json, name="build", baseline="uv")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
