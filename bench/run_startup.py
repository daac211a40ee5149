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

Usage: .venv/bin/python bench/run_startup.py [--spec specs/abide.toml] [--store DIR] [-n 30] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import ENVGEN, REPO, timed, write_results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default=str(REPO / "specs" / "abide.toml"))
    ap.add_argument("--store", help="the store (default: envgen's)")
    ap.add_argument("-n", "--rounds", type=int, default=30)
    ap.add_argument("--cwd", default=str(REPO), help="where both commands run (the record reads its git state)")
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
    runs: dict[str, list[float]] = {k: [] for k in cmds}
    for c in cmds.values():
        timed(c, cwd=args.cwd)
    for i in range(args.rounds):
        # alternate the order, so no command always follows the same one
        for name in (list(cmds) if i % 2 == 0 else list(cmds)[::-1]):
            runs[name].append(timed(cmds[name], cwd=args.cwd))
    med = {k: statistics.median(v) for k, v in runs.items()}
    over = {"overhead_ms": (med["envgen"] - med["direct"]) * 1000, "ratio": med["envgen"] / med["direct"],
            "stdlib_floor_ms": (med["python+stdlib"]) * 1000}
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
          f"{args.rounds} interleaved rounds", file=sys.stderr)


if __name__ == "__main__":
    main()
