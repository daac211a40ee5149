#!/usr/bin/env python3
"""Benchmark: a self-sufficient ABIDE bundle (issue 13).

In one run, on the ABIDE env (specs/abide.toml) with one recorded pipeline run
on a small synthetic dataset:

  * bundle size: `envgen archive --with-runs` (envgen's own runtime and
    VERIFY.sh included, the default) against `--without-envgen`, as plain .tar;
  * verification time, interleaved: `sh VERIFY.sh BUNDLE` (bootstraps envgen
    from the bundle with busybox and the bundle's own Python) against
    `unshare -n envgen verify BUNDLE` (the installed envgen); both must say
    Reproduced;
  * with --bare-root DIR (a `debootstrap --variant=minbase` root; needs root):
    `tar -xf paper.tar VERIFY.sh && sh VERIFY.sh paper.tar` inside it, entered
    with new mount and network namespaces and pivot_root, as uid 1000.

Usage: .venv/bin/python bench/verify_sh_bench.py [--subjects 80] [--repeat 2] [--bare-root DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from harness import ENVGEN  # noqa: E402

from bare_host import run_in_root  # noqa: E402

SPEC = str(REPO / "specs" / "abide.toml")
BARE_PATH = "/usr/bin:/bin"


def sh(*args, **kw):
    proc = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args[:5]))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def timed_json(cmd: list[str], **kw) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return dt, json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=80)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--bare-root", type=Path, help="a debootstrap --variant=minbase root to verify in as uid 1000")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="envgen-verify-sh-bench-"))
    os.chmod(work, 0o755)
    result: dict = {"subjects": args.subjects}
    try:
        sh(*ENVGEN, "snapshot", SPEC)
        sh(*ENVGEN, "build", SPEC)
        data, out = work / "data", work / "out"
        data.mkdir()
        out.mkdir()
        sh(*ENVGEN, "run", SPEC, "--bind", f"{data}:/data", "--", "abide-pipeline", "synth", "--out", "/data",
           "--seed", "1", "--n-subjects", str(args.subjects))
        run = json.loads(sh(*ENVGEN, "run", SPEC, "--json", "--label", "bench-verify-sh", "--bind",
                            f"{data}:/data:ro", "--bind", f"{out}:/out", "--", "abide-pipeline", "--input-dir",
                            "/data", "--output-dir", "/out", "--random-state", "0").stdout)
        full, lean = work / "paper.tar", work / "lean.tar"
        sh(*ENVGEN, "archive", SPEC, "--with-runs", "--run", run["run"], "-o", str(full))
        sh(*ENVGEN, "archive", SPEC, "--with-runs", "--run", run["run"], "--without-envgen", "-o", str(lean))
        f, le = full.stat().st_size, lean.stat().st_size
        result["size"] = {"with_envgen_mb": round(f / 1e6, 1), "without_envgen_mb": round(le / 1e6, 1),
                          "overhead_mb": round((f - le) / 1e6, 1), "overhead_ratio": round(f / le, 3)}
        print(f"bundle: {f / 1e6:.1f} MB with envgen's runtime, {le / 1e6:.1f} MB without", file=sys.stderr)

        runner = work / "runner"
        runner.mkdir()
        shutil.copy(full, runner / "paper.tar")
        sh("tar", "-xf", "paper.tar", "VERIFY.sh", cwd=runner)
        cut = ["unshare", "-n"] if os.geteuid() == 0 else []
        times: dict[str, list[float]] = {"verify_sh": [], "envgen_verify": []}
        for _ in range(args.repeat):
            t, v = timed_json(["sh", "VERIFY.sh", "paper.tar", "--json"], cwd=runner,
                              env={"PATH": BARE_PATH, "HOME": str(runner)})
            assert v["level"] == "reproduced", v
            times["verify_sh"].append(t)
            t, v = timed_json([*cut, *ENVGEN, "verify", str(full), "--json"])
            assert v["level"] == "reproduced", v
            times["envgen_verify"].append(t)
            print(f"VERIFY.sh {times['verify_sh'][-1]:.1f} s, envgen verify {t:.1f} s", file=sys.stderr)
        med = {k: statistics.median(v) for k, v in times.items()}
        result["verify"] = {"runs_s": {k: [round(x, 2) for x in v] for k, v in times.items()},
                            "median_s": {k: round(v, 2) for k, v in med.items()},
                            "ratio_verify_sh_vs_envgen_verify": round(med["verify_sh"] / med["envgen_verify"], 3)}

        if args.bare_root:
            home = args.bare_root / "home" / "reviewer"
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            shutil.copy(full, home / "paper.tar")
            for p in (home, home / "paper.tar"):
                os.chown(p, 1000, 1000)
            for tool in ("usr/bin/python3", "usr/bin/bwrap", "usr/bin/zstd", "usr/bin/xz"):
                assert not (args.bare_root / tool).exists(), f"{tool} in the bare root"
            t0 = time.perf_counter()
            proc = run_in_root(args.bare_root, ["/bin/sh", "-c", "tar -xf paper.tar VERIFY.sh && sh VERIFY.sh "
                                                "paper.tar"], cwd="/home/reviewer", uid=1000, gid=1000)
            dt = time.perf_counter() - t0
            verdict = next((ln for ln in proc.stdout.splitlines() if ln.startswith("verdict:")), "")
            result["bare_root"] = {"exit": proc.returncode, "seconds": round(dt, 1), "verdict": verdict}
            print(proc.stdout, file=sys.stderr)
            shutil.rmtree(home, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
