#!/usr/bin/env python3
"""Benchmark: builds from install units (issue 14), on the ABIDE env, in one run, interleaved.

Per round (uv's two installs before envgen's cold builds in every other round):
  * cold build: `envgen build` with the tree and every unit removed first (every unit made: .debs unpacked,
    wheels installed, bytecode compiled) against `uv pip install --compile-bytecode` of the same wheels into
    a fresh venv (and raw uv), and against the whole-tree install this envgen still has
    (`EmbeddedBuilder.build(units=False)`, what `envgen build` did before units; the same tree);
  * cold wheels: `envgen build` with the tree and every wheel's unit removed, the .debs' and the standard
    library's units kept: like for like with uv, which installs into an interpreter that is already
    there, its standard library compiled;
  * warm units: the tree removed, every unit in the store: `envgen build` only links;
  * one leaf re-pinned (a copy of specs/abide.toml with pyyaml==OLDER): `envgen lock`, `envgen snapshot`
    and `envgen build` of it, with its tree and the older pyyaml's unit removed first, so that the build
    makes that one unit and reuses the rest.

Nothing is deleted while the rounds run: what a step must not find (a tree, the units, a venv) is renamed
aside into the scratch directory, removed after the last round.  Every timed command starts after
os.sync(); the bench's start and each cold step (the cold builds, the whole-tree install, both uv
installs) also drop the kernel's clean caches (harness.quiet_filesystem, as root; else the bench waits 6
minutes at its start only), so that no deletion before a step slows the files it makes: on ext4 without a
journal (this machine's root filesystem) that cost many times the usual CPU (see harness.py).  uv
--no-cache deletes its temporary cache (~1,000 directories) as it ends, and an earlier version of this
script deleted between steps: whichever step came next paid, and the ratios swung by 1.1-1.6x.  A cold
step thus also reads its inputs from disk, uv's and envgen's alike.

Works in a scratch store whose objects are hard links into --source-store (which must hold the ABIDE
snapshot: `envgen snapshot specs/abide.toml`), and a scratch checkout (the spec, its committed lock, the
pipeline).  The older pyyaml wheel is downloaded once, in the warm-up, before anything is timed.
Beside wall times, the CPU seconds of the cold builds and of uv --compile-bytecode (from /proc/stat, the
machine's busy time while each ran: every process, the sandboxed ones too): on a 2-core machine both
keep the cores busy, and the CPU time shows the work each does, less disturbed by other tenants.
Usage: .venv/bin/python bench/units_bench.py [--source-store DIR] [--repeat N] [--older 6.0.1] [--json OUT]
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

from harness import ENVGEN, medians, quiet_filesystem, wheelhouse, write_results  # noqa: E402

from envgen.fsutil import remove_tree  # noqa: E402
from envgen.lock import pylock  # noqa: E402
from envgen.lock.resolve import uv_bin  # noqa: E402
from envgen.paths import store_dir  # noqa: E402

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def busy_s() -> float:
    """CPU seconds this machine has spent busy so far, every core (/proc/stat: user, nice, system, irq,
    softirq). A command's share of it, on a machine otherwise idle, is its CPU time with every process it
    started, the sandboxed ones too (other tenants of the host show up as steal, not here)."""
    with open("/proc/stat") as fh:
        fields = fh.readline().split()[1:8]
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields)
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


LAST_CPU = [0.0]  # the CPU seconds of the last command run()
QUIET: set[str] = set()  # what quiet_filesystem did before the cold steps


def run(cmd: list[str], cold: bool = False, **kw) -> tuple[float, str]:
    """Time *cmd*, after the previous step's writes are out (a step pays for its own, not the one before);
    *cold*: and from cold caches, so that no deletion before it slows it (harness.quiet_filesystem)."""
    if cold:
        QUIET.add(quiet_filesystem(wait=False))
    else:
        os.sync()
    c0 = busy_s()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, **kw)
    dt = time.perf_counter() - t0
    LAST_CPU[0] = busy_s() - c0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd[:5]))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return dt, proc.stdout


def envgen(*args: str, cold: bool = False) -> tuple[float, dict]:
    dt, out = run([*ENVGEN, *args, "--json"], cold=cold)
    return dt, json.loads(out)


WHOLE = ("import sys; from envgen.builders.embedded import BUILDER; from envgen.snapshot import Store; "
         "print(BUILDER.build(Store(sys.argv[1]), sys.argv[2], force=True, units=False).digest)")


def checkout(work: Path, older: str) -> tuple[Path, Path]:
    """specs/abide.toml with its committed lock, a re-pinned copy, and the pipeline, in a scratch checkout."""
    (work / "specs").mkdir(parents=True)
    shutil.copy(REPO / "specs" / "abide.toml", work / "specs")
    shutil.copy(REPO / "specs" / "pylock.abide.toml", work / "specs")
    shutil.copytree(REPO / "pipelines" / "abide", work / "pipelines" / "abide",
                    ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.pyc", ".pytest_cache", "*.egg-info"))
    text = (REPO / "specs" / "abide.toml").read_text()
    assert '"pyyaml",' in text and 'name = "abide"' in text
    old = work / "specs" / "abideold.toml"
    old.write_text(text.replace('name = "abide"', 'name = "abideold"').replace('"pyyaml",', f'"pyyaml=={older}",'))
    return work / "specs" / "abide.toml", old


def unit_of(store: Path, wheel_prefix: str) -> list[Path]:
    out = []
    for d in (store / "units").iterdir():
        meta = json.loads((d / "meta.json").read_text())
        if meta["unit"] == "wheel" and meta["name"].startswith(wheel_prefix):
            out.append(d)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source-store", default=str(store_dir()))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--older", default="6.0.1", help="the pyyaml release the re-pinned copy asks for")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="envgen-units-bench-"))
    try:
        bench(work, Path(args.source_store), args)
    finally:
        if not args.keep:
            remove_tree(work)


def bench(work: Path, source: Path, args) -> None:
    aside = work / "aside"
    aside.mkdir()

    def set_aside(path: Path) -> None:
        """Out of the way by one rename (the same filesystem), not deleted: see the module's note."""
        if path.exists():
            os.rename(path, aside / str(len(os.listdir(aside))))

    quiet = quiet_filesystem()  # before the warm-up, which reads back what the caches held
    store = work / "store"
    (store / "objects").mkdir(parents=True)
    subprocess.run(["cp", "-al", str(source / "objects" / "sha256"), str(store / "objects")], check=True)
    shutil.copytree(source / "roots", store / "roots")
    shutil.copy(source / "envgen-store.json", store / "envgen-store.json")
    if (source / "built-wheels").is_dir():  # the pipeline's own wheel, built from its source before
        shutil.copytree(source / "built-wheels", store / "built-wheels")
    spec, old = checkout(work / "checkout", args.older)
    s = ["--store", str(store)]

    print("warm-up: the ABIDE tree from scratch, then the re-pinned copy locked, snapshotted, built", file=sys.stderr)
    _, first = envgen("build", str(spec), *s)
    envgen("lock", str(old))
    envgen("snapshot", str(old), *s)
    _, first_old = envgen("build", str(old), *s)
    old_lock = pylock.load(old.parent / "pylock.abideold.toml")
    assert old_lock.package("pyyaml").version == args.older, old_lock.package("pyyaml")

    lock = pylock.load(spec.parent / "pylock.abide.toml")
    wheels, req = wheelhouse(store, lock, work)
    uv = uv_bin()

    keys = ("envgen-cold", "envgen-cold-wheels", "envgen-whole-tree", "uv", "uv-compile", "envgen-warm-units",
            "repin-lock", "repin-snapshot", "repin-build", "repin-total")
    res: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in ("envgen-cold", "envgen-cold-wheels", "uv-compile")}
    phases: list[dict] = []
    wheel_phases: list[dict] = []
    repin_units: list[dict] = []
    def cold() -> None:
        set_aside(Path(first["path"]).parent)  # cold: no tree and no unit (what --force would keep)
        set_aside(store / "units")
        dt, out = envgen("build", str(spec), *s, cold=True)
        assert out["tree_digest"] == first["tree_digest"]
        res["envgen-cold"].append(dt)
        cpu["envgen-cold"].append(LAST_CPU[0])
        phases.append(out["phases"])
        set_aside(Path(first["path"]).parent)
        dt, digest = run([sys.executable, "-c", WHOLE, str(store), first["snapshot_id"]], cold=True, cwd=REPO)
        assert digest.strip() == first["tree_digest"], digest
        res["envgen-whole-tree"].append(dt)
        # like for like with uv, which installs into an interpreter that is there, its stdlib compiled:
        # the .debs' and the standard library's units kept, every wheel's unit made
        set_aside(Path(first["path"]).parent)
        for d in unit_of(store, ""):
            set_aside(d)
        dt, out = envgen("build", str(spec), *s, cold=True)
        assert out["tree_digest"] == first["tree_digest"]
        assert out["units"]["built"] == len(unit_of(store, "")), out["units"]
        res["envgen-cold-wheels"].append(dt)
        cpu["envgen-cold-wheels"].append(LAST_CPU[0])
        wheel_phases.append(out["phases"])

    def uvs(i: int) -> None:
        for name, extra in (("uv", []), ("uv-compile", ["--compile-bytecode"])):
            venv = work / f"v-{name}-{i}"
            subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
            dt, _ = run([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "--offline",
                         "--no-index", "--no-cache", "--find-links", str(wheels), "--no-deps", "--require-hashes",
                         "-r", str(req), *extra], cold=True)
            res[name].append(dt)
            if name in cpu:
                cpu[name].append(LAST_CPU[0])
            set_aside(venv)

    for i in range(args.repeat):
        # uv first in every other round: neither side always follows the other's deletions
        if i % 2 == 0:
            cold()
            uvs(i)
        else:
            uvs(i)
            cold()
        set_aside(Path(first["path"]).parent)
        dt, out = envgen("build", str(spec), *s)
        assert out["units"]["built"] == 0 and out["tree_digest"] == first["tree_digest"]
        res["envgen-warm-units"].append(dt)
        # one leaf re-pinned: its tree and its pyyaml unit gone, its lock edited away
        set_aside(Path(first_old["path"]).parent)
        for d in unit_of(store, f"PyYAML-{args.older}-") + unit_of(store, f"pyyaml-{args.older}-"):
            set_aside(d)
        (old.parent / "pylock.abideold.toml").unlink()
        t_lock, _ = envgen("lock", str(old))
        t_snap, _ = envgen("snapshot", str(old), *s)
        t_build, out = envgen("build", str(old), *s)
        assert out["tree_digest"] == first_old["tree_digest"]
        repin_units.append({k: v for k, v in out["units"].items()})
        res["repin-lock"].append(t_lock)
        res["repin-snapshot"].append(t_snap)
        res["repin-build"].append(t_build)
        res["repin-total"].append(t_lock + t_snap + t_build)
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in res.items() if v), file=sys.stderr)

    med = medians(res)
    med_cpu = medians(cpu)
    summary = {
        "median_s": med,
        "ratio_cold_build_vs_uv_compile": med["envgen-cold"] / med["uv-compile"],
        "ratio_cold_build_vs_uv": med["envgen-cold"] / med["uv"],
        "ratio_cold_wheels_vs_uv_compile": med["envgen-cold-wheels"] / med["uv-compile"],
        "ratio_cold_wheels_vs_uv_compile_per_round": [a / b for a, b in zip(res["envgen-cold-wheels"],
                                                                            res["uv-compile"], strict=True)],
        "ratio_cold_build_vs_whole_tree": med["envgen-cold"] / med["envgen-whole-tree"],
        "ratio_repin_build_vs_cold": med["repin-build"] / med["envgen-cold"],
        "ratio_repin_total_vs_cold": med["repin-total"] / med["envgen-cold"],
        "ratio_warm_units_vs_cold": med["envgen-warm-units"] / med["envgen-cold"],
        "ratio_cold_build_vs_uv_compile_per_round": [a / b for a, b in zip(res["envgen-cold"], res["uv-compile"],
                                                                            strict=True)],
        "cpu_s": cpu,
        "median_cpu_s": med_cpu,
        "ratio_cold_build_cpu_vs_uv_compile_cpu": med_cpu["envgen-cold"] / med_cpu["uv-compile"],
        "ratio_cold_wheels_cpu_vs_uv_compile_cpu": med_cpu["envgen-cold-wheels"] / med_cpu["uv-compile"],
        "tree_digest": first["tree_digest"],
        "repinned_tree_digest": first_old["tree_digest"],
        "cold_phases": phases,
        "cold_wheels_phases": wheel_phases,
        "repin_units": repin_units,
        "cpus": len(os.sched_getaffinity(0)),
        "before_rounds": quiet,
        "before_cold_steps": sorted(QUIET),
        "runs": res,
    }
    write_results(summary, args.json, name="units", baseline="uv-compile")


if __name__ == "__main__":
    main()
