#!/usr/bin/env python3
"""Benchmark: building sdists into wheels (issue 11), against uv in the same run.

The spec tests/fixtures/sdists (docopt, pyperclip, crcmod with its C extension,
and six built from source) is locked and snapshotted once.  Then, interleaved,
each repeat measures:

  * envgen: ``envgen build --force`` with the store's cache of built wheels
    emptied, so every source is built again: a build root (runtime and build
    .debs) unpacked, each sdist built by its pinned setuptools in bwrap with the
    network cut, then the env assembled; the ``sources`` phase is reported apart;
  * uv: ``uv pip install --no-binary`` of the same four sdists, offline, from a
    directory holding the sdists and the same setuptools wheel, into a fresh
    venv on the host's Python (``--no-cache``, so each sdist is built).

Usage: .venv/bin/python bench/sdist_bench.py [--repeat N] [--json OUT] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import harness  # noqa: E402
from harness import ENVGEN, medians, ratios, write_results  # noqa: E402

from envgen.lock import pylock  # noqa: E402
from envgen.lock.resolve import uv_bin  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    with harness.workdir("envgen-sdist-bench-", keep=args.keep) as work:
        shutil.copytree(REPO / "tests" / "fixtures" / "sdists", work / "proj")
        spec = work / "proj" / "specs" / "sdists.toml"
        store = harness.fresh_store(work)
        subprocess.run([*ENVGEN, "lock", str(spec), "-q"], check=True)
        subprocess.run([*ENVGEN, "snapshot", str(spec), "--store", str(store), "-q"], check=True)
        lock = pylock.load(spec.parent / "pylock.sdists.toml")
        built = [p for p in lock.packages if p.sdist is not None and not p.wheels]
        links = work / "links"
        links.mkdir()
        for p in built:
            assert p.sdist is not None
            shutil.copy(store / "objects" / "sha256" / p.sdist.sha256, links / p.sdist.filename)
        for t in lock.build_tools:
            for w in t.wheels:
                shutil.copy(store / "objects" / "sha256" / w.sha256, links / w.filename)
        names = ",".join(p.name for p in built)
        pins = [f"{p.name}=={p.version}" for p in built]

        runs: dict[str, list[float]] = {"envgen build": [], "envgen sources phase": [], "uv --no-binary": []}
        for i in range(args.repeat):
            shutil.rmtree(store / "built-wheels", ignore_errors=True)
            t, res = harness.timed_call(lambda: harness.envgen("build", str(spec), "--store", str(store), "--force"))
            runs["envgen build"].append(t)
            runs["envgen sources phase"].append(res["phases"]["sources"])
            venv = work / f"venv{i}"
            subprocess.run([uv_bin(), "venv", "-q", "-p", sys.executable, str(venv)], check=True)
            runs["uv --no-binary"].append(harness.timed(
                [uv_bin(), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "--offline",
                 "--no-index", "--no-cache", "--find-links", str(links), "--no-binary", names, *pins]))
        med = medians(runs)
        write_results({"benchmark": "sdist builds", "packages": pins, "runs_s": runs, "median_s": med,
                       "ratio_to_uv": ratios(med, "uv --no-binary")},
                      args.json, name="sdist builds", baseline="uv --no-binary")
        print(json.dumps({"note": "envgen build includes unpacking the runtime and the build root, "
                          "the env assembly and bytecode"}), file=sys.stderr)


if __name__ == "__main__":
    main()
