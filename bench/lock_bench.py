#!/usr/bin/env python3
"""Benchmark: `envgen lock` against raw `uv pip compile` and `pip-compile --generate-hashes`.

All three resolve the same requirement set (specs/abide.toml's requirements
plus its local project) at the same snapshot date, each with a cold cache
(a fresh, empty cache directory per run), interleaved in one go so machine
noise hits them alike.  envgen is timed twice: with its apt index cache warm
(the usual case: apt only revalidates the InRelease files) and cold.

Usage: .venv/bin/python bench/lock_bench.py [--repeat 3] [--no-pip-compile] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import ENVGEN, medians, timed, write_results  # noqa: E402

from envgen.lock.resolve import uv_bin  # noqa: E402
from envgen.spec import load_spec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-pip-compile", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    spec = load_spec(REPO / "specs" / "abide.toml")
    date = spec.snapshot_date.iso
    work = Path(tempfile.mkdtemp(prefix="envgen-lock-bench-"))
    # a private copy of the spec + local project, so the repo's lock is untouched
    (work / "specs").mkdir()
    shutil.copy(spec.path, work / "specs" / "abide.toml")
    shutil.copytree(REPO / "pipelines" / "abide", work / "pipelines" / "abide",
                    ignore=shutil.ignore_patterns(".venv", "__pycache__", "tests"))
    req_in = work / "requirements.in"
    req_in.write_text("\n".join(spec.requirements + ["./pipelines/abide"]) + "\n")
    uv = uv_bin()
    results: dict[str, list[float]] = {"uv": [], "uv-pylock": [], "envgen-apt-warm": [], "envgen-apt-cold": []}
    env_base = dict(os.environ)

    # warm envgen's apt index cache once (not timed)
    subprocess.run([*ENVGEN, "lock", str(work / "specs" / "abide.toml"), "-q"], check=True,
                   cwd=work)

    for i in range(args.repeat):
        def fresh(name, i=i):
            d = work / f"cache-{name}-{i}"
            d.mkdir()
            return str(d)

        common = ["--exclude-newer", date, "--python-version", spec.python,
                  "--python-platform", "x86_64-manylinux_2_36", "--no-config", "-q"]
        results["uv"].append(timed([uv, "pip", "compile", str(req_in), "--generate-hashes", "--cache-dir", fresh("uv"),
                                    "-o", str(work / "req.txt"), *common], cwd=work))
        results["uv-pylock"].append(timed([uv, "pip", "compile", str(req_in), "--format", "pylock.toml",
                                           "--cache-dir", fresh("uvp"), "-o", str(work / "pylock.toml"), *common],
                                          cwd=work))
        results["envgen-apt-warm"].append(timed(
            [*ENVGEN, "lock", str(work / "specs" / "abide.toml"), "-q"],
            env={**env_base, "UV_CACHE_DIR": fresh("eg")}, cwd=work))
        results["envgen-apt-cold"].append(timed(
            [*ENVGEN, "lock", str(work / "specs" / "abide.toml"), "-q"],
            env={**env_base, "UV_CACHE_DIR": fresh("egc"), "ENVGEN_CACHE": fresh("egcache")}, cwd=work))
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in results.items()), file=sys.stderr)

    if not args.no_pip_compile:
        venv = work / "pipvenv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "pip-tools==7.6.2"], check=True)
        t = timed([str(venv / "bin" / "pip-compile"), "--generate-hashes", "--no-header", "--cache-dir",
                   str(work / "cache-pip"), "--rebuild", "-o", str(work / "pip-req.txt"), str(req_in)],
                  env={**env_base, "PIP_NO_CACHE_DIR": "0", "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": "/dev/null"},
                  cwd=work)
        results["pip-compile"] = [t]
        print(f"pip-compile {t:.1f}s", file=sys.stderr)

    med = medians(results)
    summary = {
        "median_s": med,
        "runs_s": results,
        "ratio_envgen_warm_vs_uv": med["envgen-apt-warm"] / med["uv"],
        "ratio_envgen_cold_vs_uv": med["envgen-apt-cold"] / med["uv"],
    }
    if "pip-compile" in med:
        summary["ratio_pip_compile_vs_envgen_warm"] = med["pip-compile"] / med["envgen-apt-warm"]
    write_results(summary, args.json, name="lock", baseline="uv")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
