#!/usr/bin/env python3
"""Benchmark: `envgen run` start-up against bwrap's own (issue 14).

`envgen run SPEC -- python -c pass` against the very same sandbox started
directly: the argv comes from `envgen run SPEC --dry-run --json`, so both start
the same bwrap with the same mounts and environment; the difference is
envgen's own work (Python start-up, finding the tree, the record).
Interleaved, N rounds after one warm-up each (the warm-up also builds the
tree and writes the launch plan). Medians, overhead in ms and the ratio.

Two references in the same rounds say what any Python front end pays on the
machine before doing anything: `python -c pass` (the interpreter with its
site packages) and `python -c "import argparse, json, pathlib, subprocess"`
(the standard modules envgen's run path cannot do without).

envgen is started as users start it: the `envgen` script next to this Python
(else `python -m envgen`). Both run from --cwd (default: this checkout, so the
record's code revision is a real `git status`). Needs SPEC snapshotted in the
store (`envgen snapshot`).

With --baseline DIR (a checkout of another envgen revision, e.g. `git worktree add /tmp/old REV`), that
envgen runs in the same rounds, by the same script and interpreter with PYTHONPATH=DIR, against its own copy
of the store (hard links; a launch plan names the builder module it was made with, so two revisions sharing
a store would keep replacing each other's plans).

Usage: .venv/bin/python bench/run_startup.py [--spec specs/abide.toml] [--store DIR] [-n 30] [--baseline DIR]
       [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ENVGEN, REPO, timed, write_results

sys.path.insert(0, str(REPO))
from envgen.paths import store_dir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default=str(REPO / "specs" / "abide.toml"))
    ap.add_argument("--store", help="the store (default: envgen's)")
    ap.add_argument("-n", "--rounds", type=int, default=30)
    ap.add_argument("--cwd", default=str(REPO), help="where both commands run (the record reads its git state)")
    ap.add_argument("--baseline", type=Path, help="another envgen checkout, measured in the same rounds")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    store = ["--store", args.store] if args.store else []
    cmd = ["python", "-c", "pass"]
    script = Path(sys.executable).with_name("envgen")
    envgen = [str(script)] if script.is_file() else ENVGEN
    dry = subprocess.run([*envgen, "run", args.spec, *store, "--dry-run", "--json", "--", *cmd], cwd=args.cwd,
                         capture_output=True, text=True)
    if dry.returncode != 0:
        raise SystemExit(dry.stderr)
    direct = json.loads(dry.stdout)["argv"]
    via = [*envgen, "run", args.spec, *store, "-q", "--", *cmd]
    print("direct: " + shlex.join(direct), file=sys.stderr)
    print("envgen: " + shlex.join(via), file=sys.stderr)

    cmds = {"direct": direct, "envgen": via, "python": [sys.executable, "-c", "pass"],
            "python+stdlib": [sys.executable, "-c", "import argparse, json, pathlib, subprocess"]}
    envs: dict[str, dict[str, str] | None] = {k: None for k in cmds}
    scratch = None
    if args.baseline is not None:
        scratch = Path(tempfile.mkdtemp(prefix="envgen-startup-"))
        source = Path(args.store) if args.store else store_dir()
        subprocess.run(["cp", "-al", str(source), str(scratch / "store")], check=True)
        shutil.rmtree(scratch / "store" / "cache" / "run", ignore_errors=True)
        cmds["baseline"] = [*envgen, "run", args.spec, "--store", str(scratch / "store"), "-q", "--", *cmd]
        envs["baseline"] = {**os.environ, "PYTHONPATH": str(args.baseline.resolve())}
    runs: dict[str, list[float]] = {k: [] for k in cmds}
    try:
        for _ in range(2):  # the second warm-up after the sources are no longer racy: the plans are kept
            for k, c in cmds.items():
                timed(c, cwd=args.cwd, env=envs[k])
            time.sleep(2.5)
        for i in range(args.rounds):
            # alternate the order, so no command always follows the same one
            for name in (list(cmds) if i % 2 == 0 else list(cmds)[::-1]):
                runs[name].append(timed(cmds[name], cwd=args.cwd, env=envs[name]))
    finally:
        if scratch is not None:
            subprocess.run(["rm", "-rf", str(scratch)], check=False)
    med = {k: statistics.median(v) for k, v in runs.items()}
    over = {"overhead_ms": (med["envgen"] - med["direct"]) * 1000, "ratio": med["envgen"] / med["direct"],
            "stdlib_floor_ms": (med["python+stdlib"]) * 1000}
    if "baseline" in med:
        over["baseline_overhead_ms"] = (med["baseline"] - med["direct"]) * 1000
    res = {
        "median_s": med, **over, "rounds": args.rounds, "runs_s": runs, "argv": direct,
        "min_s": {k: min(v) for k, v in runs.items()},
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
    }
    write_results(res, args.json)
    print(f"direct {med['direct'] * 1000:.1f} ms, envgen {med['envgen'] * 1000:.1f} ms: "
          f"overhead {over['overhead_ms']:.1f} ms ({over['ratio']:.2f}×); python -c pass "
          f"{med['python'] * 1000:.1f} ms, + argparse/json/pathlib/subprocess {med['python+stdlib'] * 1000:.1f} ms; "
          f"{args.rounds} interleaved rounds" + (f"; baseline {med['baseline'] * 1000:.1f} ms, overhead "
                                                  f"{over['baseline_overhead_ms']:.1f} ms" if "baseline" in med
                                                  else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
