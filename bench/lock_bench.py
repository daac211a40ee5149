#!/usr/bin/env python3
"""Benchmark: `envgen lock specs/abide.toml` against raw `uv pip compile --generate-hashes`.

Both resolve the same requirement set (specs/abide.toml's requirements plus
its local project) at the same snapshot date, for the same Python and
platform, interleaved in one go so machine and network noise hit them alike.

Warmth, the same on both sides: every cache is warmed by one untimed run of
each command before the rounds.  Raw uv uses one uv cache directory
(``--cache-dir``), whose index pages PyPI lets it keep ten minutes, so every
timed raw run revalidates them.  envgen runs as users run it, on its own
cache (``ENVGEN_CACHE``: the apt state, the resolved Debian closure, the
dependency edges, the hooks' answers, and its own uv cache, where pages
fetched a day after the snapshot date are kept 7 days:
envgen/lock/resolve._index_args).  ``envgen-uv-cache`` is envgen on raw
uv's cache directory (``UV_CACHE_DIR``: a user's uv cache is used as uv uses
it), so that series revalidates every page as raw uv does.  envgen's modules are byte-compiled first, as
an installed envgen's are.

Timed, per round:

* ``uv``: ``uv pip compile --generate-hashes`` (the baseline);
* ``uv-python``: the same with ``--python`` naming this interpreter, as envgen
  runs uv: it skips uv's interpreter discovery, which on a host whose
  ``python3.X`` is a pyenv shim costs ~0.3 s per uv run;
* ``uv-pylock``: ``uv pip compile --format pylock.toml`` (what envgen reads);
* ``envgen``: ``envgen lock`` with everything warm (the usual case);
* ``envgen-edges-cold``: the same without the cached edges (one more uv run, offline);
* ``envgen-uv-cache``: ``envgen lock`` with ``UV_CACHE_DIR`` set to raw uv's cache (revalidating as it does);
* ``envgen-apt-cold`` (``--apt-cold``): a fresh envgen cache, so ``apt-get update`` too;
* ``envgen-before`` (``--before CHECKOUT``): ``envgen lock`` from another checkout of
  envgen (``PYTHONPATH=CHECKOUT``), everything warm: a before/after in one run.

Between two timed commands the bench pauses (``--pause``, 1 s): on the host
these figures come from, the DNS resolver drops queries that come too fast
(each drop is a 5 s retry in whichever run waits on it), and back-to-back
runs made that the main source of noise.  Runs over 3 s are counted as
``stalls`` per series; the medians are of all runs.

Usage: PYTHONPATH=. .venv/bin/python bench/lock_bench.py [--repeat 5] [--apt-cold] [--before DIR] [--pip-compile]
       [--pause 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import ENVGEN, medians, timed, write_results  # noqa: E402

from envgen.lock.resolve import uv_bin  # noqa: E402
from envgen.spec import load_spec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--apt-cold", action="store_true", help="also time envgen with a fresh cache (apt-get update)")
    ap.add_argument("--pip-compile", action="store_true", help="also time pip-compile once (cold, ~1 min)")
    ap.add_argument("--before", type=Path, metavar="CHECKOUT", help="also time envgen lock from this checkout")
    ap.add_argument("--pause", type=float, default=1.0, help="seconds between two timed commands")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    spec = load_spec(REPO / "specs" / "abide.toml")
    work = Path(tempfile.mkdtemp(prefix="envgen-lock-bench-"))
    # a private copy of the spec + local project, so the repo's lock is untouched
    (work / "specs").mkdir()
    shutil.copy(spec.path, work / "specs" / "abide.toml")
    shutil.copytree(REPO / "pipelines" / "abide", work / "pipelines" / "abide",
                    ignore=shutil.ignore_patterns(".venv", "__pycache__", "tests"))
    req_in = work / "requirements.in"
    req_in.write_text("\n".join(spec.requirements + ["./pipelines/abide"]) + "\n")
    uv = uv_bin()
    uv_cache = work / "uv-cache"
    envgen_cache = work / "envgen-cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env_envgen = {**env, "ENVGEN_CACHE": str(envgen_cache)}
    env_shared = {**env_envgen, "UV_CACHE_DIR": str(uv_cache)}
    glibc = spec.distro.glibc
    common = ["--exclude-newer", spec.snapshot_date.iso, "--python-version", spec.python,
              "--python-platform", f"x86_64-manylinux_{glibc[0]}_{glibc[1]}", "--no-config", "-q",
              "--cache-dir", str(uv_cache)]
    lock = [*ENVGEN, "lock", str(work / "specs" / "abide.toml"), "-q"]
    cmds = {
        "uv": [uv, "pip", "compile", str(req_in), "--generate-hashes", "-o", str(work / "req.txt"), *common],
        "uv-python": [uv, "pip", "compile", str(req_in), "--generate-hashes", "-o", str(work / "req-py.txt"),
                      "--python", sys.executable, *common],
        "uv-pylock": [uv, "pip", "compile", str(req_in), "--format", "pylock.toml", "-o", str(work / "pylock.toml"),
                      *common],
    }

    env_before = {**env_envgen, "PYTHONPATH": str(args.before.resolve())} if args.before else None
    # envgen's bytecode, as an installed envgen has it (PYTHONDONTWRITEBYTECODE may be set here)
    for checkout in [REPO, *([args.before] if args.before else [])]:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(checkout / "envgen")], check=True,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})

    # warm both sides once (not timed): uv's cache, envgen's apt state and lock cache
    for cmd in cmds.values():
        timed(cmd, env=env, cwd=work)
    timed(lock, env=env_envgen, cwd=work)
    timed(lock, env=env_shared, cwd=work)
    if env_before:
        timed(lock, env=env_before, cwd=work)

    results: dict[str, list[float]] = {k: [] for k in [*cmds, "envgen", "envgen-edges-cold", "envgen-uv-cache"]}
    if args.apt_cold:
        results["envgen-apt-cold"] = []
    if env_before:
        results["envgen-before"] = []
    def run(name: str, cmd: list[str], env: dict[str, str]) -> None:
        time.sleep(args.pause)
        results[name].append(timed(cmd, env=env, cwd=work))

    for i in range(args.repeat):
        for name, cmd in cmds.items():
            run(name, cmd, env)
        run("envgen", lock, env_envgen)
        shutil.rmtree(envgen_cache / "lock" / "edges", ignore_errors=True)
        run("envgen-edges-cold", lock, env_envgen)
        run("envgen-uv-cache", lock, env_shared)
        if args.apt_cold:
            run("envgen-apt-cold", lock, {**env_envgen, "ENVGEN_CACHE": str(work / f"envgen-cache-cold-{i}")})
        if env_before:
            run("envgen-before", lock, env_before)
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in results.items() if v), file=sys.stderr)

    if args.pip_compile:
        venv = work / "pipvenv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "pip-tools==7.6.2"], check=True)
        t = timed([str(venv / "bin" / "pip-compile"), "--generate-hashes", "--no-header", "--cache-dir",
                   str(work / "cache-pip"), "--rebuild", "-o", str(work / "pip-req.txt"), str(req_in)],
                  env={**env, "PIP_NO_CACHE_DIR": "0", "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": "/dev/null"},
                  cwd=work)
        results["pip-compile"] = [t]
        print(f"pip-compile {t:.1f}s", file=sys.stderr)

    med = medians(results)
    summary = {
        "median_s": med,
        "runs_s": results,
        "ratio_envgen_vs_uv": med["envgen"] / med["uv"],
        "ratio_envgen_vs_uv_python": med["envgen"] / med["uv-python"],
        "ratio_envgen_edges_cold_vs_uv": med["envgen-edges-cold"] / med["uv"],
        "ratio_envgen_uv_cache_vs_uv": med["envgen-uv-cache"] / med["uv"],
        "per_round_ratio_envgen_vs_uv": sorted(e / u for e, u in zip(results["envgen"], results["uv"], strict=True)),
        "stalls": {k: sum(t > 3 for t in v) for k, v in results.items()},
    }
    if "envgen-apt-cold" in med:
        summary["ratio_envgen_apt_cold_vs_uv"] = med["envgen-apt-cold"] / med["uv"]
    if "envgen-before" in med:
        summary["ratio_envgen_before_vs_uv"] = med["envgen-before"] / med["uv"]
    if "pip-compile" in med:
        summary["ratio_pip_compile_vs_envgen"] = med["pip-compile"] / med["envgen"]
    write_results(summary, args.json, name="lock", baseline="uv")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
