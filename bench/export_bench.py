"""Benchmark `envgen export` against the raw tools, on one built env tree.

    .venv/bin/python bench/export_bench.py [--spec specs/abide.toml] [--store DIR] [--json]

Needs the env built in the store (`envgen snapshot SPEC && envgen build SPEC`).
Measures, in one run (compare ratios, the machines are noisy):

* export time per format (oci gzip, oci zstd, docker-archive, sif, sqsh) vs the
  raw tools on the same tree: `tar -c | gzip -6`, `mksquashfs` with the same
  flags, and `umoci` (init + new + insert of the rootfs + repack, gzip);
* image size vs a conventional image: the Debian runtime layer plus a
  `pip install` of the same wheels into a venv (measured: the installed size
  of the env's site-packages with bytecode as pip writes it, estimated from the
  tree, since pip would install the same files; plus the wheel cache pip keeps
  unless --no-cache-dir, reported separately);
* bytes rewritten after a one-package change: the layers whose digest changes
  when one small pinned package changes (synthesised by editing a copy of the
  tree: a small package's file content and version), as a share of the image.
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

from harness import timed_call as timed  # noqa: E402


def du(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.lstat(p).st_size
    return total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default=str(REPO / "specs/abide.toml"))
    ap.add_argument("--store", default=os.environ.get("ENVGEN_STORE"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--skip", default="", help="comma-separated steps to skip (umoci,zstd,docker,sqsh)")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    from envgen.builders.embedded import build
    from envgen.export import layers as L
    from envgen.export import meta_for
    from envgen.export.dockerarchive import write_docker_archive
    from envgen.export.oci import write_oci
    from envgen.export.sif import write_env_sif, write_env_sqsh
    from envgen.export.squashfs import QUIET, REPRO_FLAGS, mksquashfs_path, time_flags
    from envgen.lock import load_lock_for
    from envgen.snapshot.store import open_store

    store = open_store(args.store)
    spec, lock = load_lock_for(args.spec)
    res = build(store, lock, spec.path if spec else None)
    meta = meta_for(spec, lock, res)
    root = res.rootfs
    work = Path(tempfile.mkdtemp(prefix="export-bench-"))
    r: dict = {"env": lock.name, "tree_bytes": du(root), "tree_digest": res.digest, "times_s": {}, "sizes": {}}
    T, Z = r["times_s"], r["sizes"]
    try:
        T["envgen oci gzip"], oci = timed(lambda: write_oci(meta, work / "a.oci"))
        Z["oci gzip"] = oci["size"]
        if "zstd" not in skip:
            T["envgen oci zstd"], ociz = timed(lambda: write_oci(meta, work / "z.oci", "zstd"))
            Z["oci zstd"] = ociz["size"]
        if "docker" not in skip:
            T["envgen docker-archive"], da = timed(lambda: write_docker_archive(meta, work / "a.tar"))
            Z["docker-archive (uncompressed)"] = da["size"]
            (work / "a.tar").unlink()
        T["envgen sif"], sif = timed(lambda: write_env_sif(meta, work / "a.sif"))
        Z["sif"] = sif["size"]
        if "sqsh" not in skip:
            T["envgen sqsh"], sq = timed(lambda: write_env_sqsh(meta, work / "a.sqsh"))
            Z["sqsh"] = sq["size"]
        # raw tools on the same tree
        T["tar | gzip -6"], _ = timed(lambda: subprocess.run(
            f"tar -C {root} -cf - . | gzip -6 > {work}/raw.tar.gz", shell=True, check=True))
        Z["tar | gzip -6"] = (work / "raw.tar.gz").stat().st_size
        env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
        T["mksquashfs"], _ = timed(lambda: subprocess.run(
            [mksquashfs_path(), str(root), str(work / "raw.sqsh"), *REPRO_FLAGS, *time_flags(meta.epoch), *QUIET],
            env=env, check=True))
        if "umoci" not in skip and shutil.which("umoci"):
            def umoci():
                img = work / "umoci.oci"
                subprocess.run(["umoci", "init", "--layout", str(img)], check=True)
                subprocess.run(["umoci", "new", "--image", f"{img}:t"], check=True)
                subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{img}:t", str(work / "b")],
                               check=True, capture_output=True)
                shutil.rmtree(work / "b" / "rootfs")
                subprocess.run(["cp", "-a", f"{root}/.", str(work / "b" / "rootfs")], check=True)
                subprocess.run(["chmod", "-R", "u+w", str(work / "b" / "rootfs")], check=True)
                subprocess.run(["umoci", "repack", "--image", f"{img}:t", str(work / "b")], check=True,
                               capture_output=True)
                return du(img)
            T["umoci unpack+copy+repack"], Z["umoci image"] = timed(umoci)
            shutil.rmtree(work / "b", ignore_errors=True)

        # conventional image: Debian rootfs + pip into a venv
        deb_bytes = sum(b["size"] for b in oci["layers"] if b["name"] == "debian")
        site = root / L.site_packages(root) if L.site_packages(root) else None
        pyc = sum(f.stat().st_size for f in site.rglob("*.pyc")) if site else 0
        venv_bytes = du(root / "opt/env")
        wheels = sum(w.size or 0 for p in lock.packages for w in p.wheels[:1])
        r["conventional"] = {
            "what": "python:3.11-slim-bookworm-like rootfs (our Debian layer, compressed) + `pip install` of the "
                    "same wheels into a venv: the installed venv (pip writes the same files, with bytecode) "
                    "compressed at our measured ratio, plus pip's wheel cache when --no-cache-dir is not given",
            "debian_layer_compressed": deb_bytes,
            "venv_installed_bytes": venv_bytes,
            "pyc_bytes": pyc,
            "wheel_cache_bytes": wheels,
        }
        ratio = sum(b["size"] for b in oci["layers"] if b["name"] != "debian") / max(1, venv_bytes)
        r["conventional"]["estimated_compressed"] = int(deb_bytes + venv_bytes * ratio)
        r["conventional"]["estimated_compressed_with_pip_cache"] = int(deb_bytes + venv_bytes * ratio + wheels)

        # one-package change: copy the tree, bump a small package, relayer
        copy = work / "changed"
        subprocess.run(["cp", "-a", f"{root}/.", str(copy)], check=True)
        subprocess.run(["chmod", "-R", "u+w", str(copy)], check=True)
        target = next(p for p in sorted(lock.packages, key=lambda p: p.name)
                      if p.name in ("six", "packaging", "cycler", "idna", "certifi")) if lock.packages else None
        owners = L.dist_files(copy)
        files = sorted(k for k, v in owners.items() if v == target.name and (copy / k).is_file())
        victim = next(f for f in files if f.endswith(".py"))
        with open(copy / victim, "a") as fh:
            fh.write("\n# patched release\n")
        with open(copy / ".envgen/pylock.toml", "a") as fh:
            fh.write(f"\n# {target.name} bumped\n")
        meta2 = meta_for(spec, lock, res)
        meta2.root = copy
        T["envgen oci gzip (after change)"], oci2 = timed(lambda: write_oci(meta2, work / "b.oci"))
        before = {b["name"]: b["digest"] for b in oci["layers"]}
        changed = [b for b in oci2["layers"] if before.get(b["name"]) != b["digest"]]
        r["one_package_change"] = {
            "package": target.name, "file": victim,
            "changed_layers": [b["name"] for b in changed],
            "bytes_rewritten": sum(b["size"] for b in changed),
            "image_bytes": oci2["size"],
            "share": round(sum(b["size"] for b in changed) / oci2["size"], 4),
        }
        r["layers"] = [{"name": b["name"], "size": b["size"]} for b in oci["layers"]]
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(work)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(r, indent=2, sort_keys=True))
    else:
        print(f"env {r['env']}: tree {r['tree_bytes'] / 1e6:.0f} MB")
        for k, v in T.items():
            print(f"  {k:<32} {v:7.1f} s")
        for k, v in Z.items():
            print(f"  {k:<32} {v / 1e6:7.1f} MB")
        c = r["conventional"]
        print(f"  conventional (est.)              {c['estimated_compressed'] / 1e6:7.1f} MB "
              f"(+pip cache {c['estimated_compressed_with_pip_cache'] / 1e6:.1f} MB)")
        o = r["one_package_change"]
        print(f"  one-package change ({o['package']}): layers {o['changed_layers']} rewritten, "
              f"{o['bytes_rewritten'] / 1e6:.2f} MB of {o['image_bytes'] / 1e6:.0f} MB = {100 * o['share']:.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
