#!/usr/bin/env python3
"""Benchmark snapshot, store verify and archive bundles on a real lock.

    .venv/bin/python bench/snapshot_bench.py [--spec specs/abide.toml] [--work /tmp/envgen-bench]

Measures, in one run (same network, same disk):

* cold ``envgen snapshot`` into an empty store vs ``pip download --no-deps
  --require-hashes`` of the same wheels (a requirements file written from the
  lock, direct URLs with hashes, no pip cache).  envgen also fetches the .debs,
  so the comparison is conservative;
* warm ``envgen snapshot`` (everything present);
* ``store verify`` throughput vs ``sha256sum`` over the same object files
  (page cache warm for both, best of three);
* bundle size and time per compression setting.

Prints a JSON document on stdout (and a short table on stderr).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import ENVGEN  # noqa: E402

from envgen.archive import write_bundle  # noqa: E402
from envgen.lock import load_lock_for, pylock  # noqa: E402
from envgen.snapshot.store import Store  # noqa: E402


def timed(cmd, **kw) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def best(fn, n=3) -> float:
    return min(fn() for _ in range(n))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default=str(REPO / "specs" / "abide.toml"))
    ap.add_argument("--work", default="/tmp/envgen-bench")
    ap.add_argument("--skip-fetch", action="store_true", help="reuse WORK/store; skip the network comparison")
    ap.add_argument("--rounds", type=int, default=3, help="cold-fetch rounds (best of)")
    ap.add_argument("--compressions", default="zstd:3,zstd:10,zstd:19,gzip:6,gzip:9,xz:6")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out: dict = {"spec": args.spec, "cpus": os.cpu_count()}
    _, lock = load_lock_for(args.spec)
    store_dir = work / "store"

    wheels = [w for p in lock.packages + lock.build_tools for w in p.wheels]
    out["wheels"] = len(wheels)
    out["wheel_bytes"] = sum(w.size or 0 for w in wheels)
    out["deb_bytes"] = sum(d.size for d in lock.debian.packages)

    if not args.skip_fetch:
        req = work / "requirements.txt"
        req.write_text("".join(f"{p.name} @ {w.url} --hash=sha256:{w.sha256}\n"
                               for p in lock.packages + lock.build_tools for w in p.wheels))
        # the same wheels as pip, nothing else: a copy of the lock without debs and local projects
        wl = copy.deepcopy(lock)
        wl.packages = [p for p in wl.packages if not p.is_local]
        wl.debian.packages = []
        wdir = work / "wheels-only"
        wdir.mkdir(exist_ok=True)
        wlock = wdir / f"pylock.{lock.name}.toml"
        wlock.write_text(pylock.dumps(wl))
        wstore = work / "wstore"
        pip_cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--no-cache-dir",
                   "--disable-pip-version-check", "-q", "-d", str(work / "pipdl"), "-r", str(req)]
        runs: dict[str, list[float]] = {"pip": [], "full": [], "wheels8": [], "wheels16": []}
        cmds = {
            "pip": (work / "pipdl", pip_cmd),
            "full": (store_dir, [*ENVGEN, "snapshot", args.spec, "--store", str(store_dir), "-q"]),
            "wheels8": (wstore, [*ENVGEN, "snapshot", str(wlock), "--store", str(wstore), "-q", "-j", "8"]),
            "wheels16": (wstore, [*ENVGEN, "snapshot", str(wlock), "--store", str(wstore), "-q", "-j", "16"]),
        }
        order = list(cmds)
        for i in range(args.rounds):  # rotate the order so no one always gets the warmer network
            for key in order[i % len(order):] + order[: i % len(order)]:
                d, cmd = cmds[key]
                shutil.rmtree(d, ignore_errors=True)
                runs[key].append(timed(cmd))
        out["runs_s"] = runs
        out["pip_download_s"] = min(runs["pip"])
        out["snapshot_cold_s"] = min(runs["full"])
        out["snapshot_cold_wheels_j8_s"] = min(runs["wheels8"])
        out["snapshot_cold_wheels_j16_s"] = min(runs["wheels16"])
        out["cold_ratio_full_snapshot_over_pip"] = out["snapshot_cold_s"] / out["pip_download_s"]
        out["cold_ratio_wheels_j8_over_pip"] = out["snapshot_cold_wheels_j8_s"] / out["pip_download_s"]
        out["cold_ratio_wheels_j16_over_pip"] = out["snapshot_cold_wheels_j16_s"] / out["pip_download_s"]
    elif not store_dir.is_dir():
        subprocess.run([*ENVGEN, "snapshot", args.spec, "--store", str(store_dir), "-q"], check=True)

    out["snapshot_warm_s"] = best(lambda: timed([*ENVGEN, "snapshot", args.spec, "--store", str(store_dir), "-q"]))

    store = Store(store_dir)
    objs = sorted(store.iter_objects())
    files = [str(store.path_of(s)) for s in objs]
    nbytes = sum(os.path.getsize(f) for f in files)
    out["verify_bytes"] = nbytes
    subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    sha_t = best(lambda: timed(["sha256sum", *files]))

    def ver(jobs):
        t = time.perf_counter()
        rep = store.verify(jobs=jobs)
        assert rep.ok
        return time.perf_counter() - t

    ver_t = best(lambda: ver(None))
    ver1_t = best(lambda: ver(1))
    cli_t = best(lambda: timed([*ENVGEN, "store", "verify", "--store", str(store_dir), "-q"]))
    out["sha256sum_MBps"] = nbytes / sha_t / 1e6
    out["verify_MBps"] = nbytes / ver_t / 1e6
    out["verify_1thread_MBps"] = nbytes / ver1_t / 1e6
    out["verify_cli_MBps"] = nbytes / cli_t / 1e6
    out["verify_ratio_vs_sha256sum"] = out["verify_MBps"] / out["sha256sum_MBps"]
    out["verify_1thread_ratio_vs_sha256sum"] = out["verify_1thread_MBps"] / out["sha256sum_MBps"]
    out["verify_cli_ratio_vs_sha256sum"] = out["verify_cli_MBps"] / out["sha256sum_MBps"]

    sid = subprocess.run([*ENVGEN, "snapshot", args.spec, "--store", str(store_dir), "-q"], check=True,
                         capture_output=True, text=True).stdout.strip()
    out["snapshot_id"] = sid
    bundles = []
    for item in args.compressions.split(","):
        comp, _, lvl = item.partition(":")
        level = int(lvl) if lvl else None
        dest = work / f"bundle-{comp}{lvl}.tar"
        t = time.perf_counter()
        res = write_bundle(store, sid, dest, comp, level, force=True)
        dt_ = time.perf_counter() - t
        bundles.append({"compression": comp, "level": res["level"], "seconds": round(dt_, 2), "bytes": res["bytes"],
                        "ratio": round(res["bytes"] / res["content_bytes"], 4), "content_bytes": res["content_bytes"]})
        print(f"  {comp}:{res['level']}: {res['bytes'] / 1e6:.1f} MB in {dt_:.1f} s", file=sys.stderr)
        dest.unlink()
    out["bundles"] = bundles

    print(json.dumps(out, indent=2))
    print(f"cold snapshot {out.get('snapshot_cold_s', float('nan')):.1f} s (wheels only, -j8: "
          f"{out.get('snapshot_cold_wheels_j8_s', float('nan')):.1f} s, -j16: "
          f"{out.get('snapshot_cold_wheels_j16_s', float('nan')):.1f} s) vs pip download "
          f"{out.get('pip_download_s', float('nan')):.1f} s; warm {out['snapshot_warm_s']:.2f} s; verify "
          f"{out['verify_MBps']:.0f} MB/s vs sha256sum {out['sha256sum_MBps']:.0f} MB/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
