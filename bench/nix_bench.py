"""Nix builder vs embedded builder on the same snapshot: cold, warm, and the --check rebuild.

    .venv/bin/python bench/nix_bench.py [specs/abide.toml] [--store DIR] [--json]

Needs the snapshot in the store (`envgen snapshot SPEC --store DIR`) and nix-bin.
"cold" means the output is not there: for Nix the env's store path is deleted
first (`nix-store --delete`; the seeded inputs stay), for the embedded builder
`--force`.  "warm" is the same command again (Nix evaluates and finds the path
valid; embedded finds trees/KEY).  "check" is `nix-build --check` (a full
sandboxed rebuild compared bit for bit).  Also compares the two trees entry by
entry (modes normalised to the store's: see docs/nix.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness import envgen  # noqa: E402
from harness import timed_call as timed  # noqa: E402

from envgen.builders import nix as nixb  # noqa: E402
from envgen.builders.tree import listing  # noqa: E402


def norm(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        t, mode, rest = line.split(" ", 2)
        m = 0o755 if t == "d" or (t == "f" and int(mode, 8) & 0o111) else (0o644 if t == "f" else int(mode, 8))
        out[rest.split(" ")[0]] = f"{t} {m:04o} {rest}"
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", nargs="?", default="specs/abide.toml")
    ap.add_argument("--store", default=os.environ.get("ENVGEN_STORE", "/tmp/st-nix"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res: dict = {"spec": a.spec, "cores": os.cpu_count()}

    t, out = timed(lambda: envgen("nix", "seed", a.spec, "--store", a.store))
    res["seed_s"] = round(t, 2)
    name = out["spec"]
    # nix, cold: drop the env output (and the digest cache), keep the seeded inputs
    warm = envgen("build", a.spec, "--store", a.store, "--builder", "nix")
    path = warm["path"]
    subprocess.run(["rm", "-f", str(Path(a.store) / "nix-roots" / f"{name}-env")], check=True)
    subprocess.run(["nix-store", "--delete", path], env=nixb.nix_env(), capture_output=True, check=True)
    for f in (Path(a.store) / "nix-trees").glob(f"{Path(path).name}*"):
        f.unlink()
    res["nix_cold_s"], cold = timed(lambda: envgen("build", a.spec, "--store", a.store, "--builder", "nix"))
    res["nix_warm_s"], again = timed(lambda: envgen("build", a.spec, "--store", a.store, "--builder", "nix"))
    assert cold["path"] == path == again["path"] and cold["tree_digest"] == again["tree_digest"]
    flake = nixb.flake_dir_for(Path(a.spec))
    res["nix_check_s"], proc = timed(lambda: subprocess.run(
        ["nix-build", str(flake / "nix" / "default.nix"), "-A", f"{name}-env", "--check", "--no-out-link"],
        env=nixb.nix_env(), capture_output=True, text=True))
    res["nix_check_ok"] = proc.returncode == 0
    res["embedded_cold_s"], emb = timed(lambda: envgen("build", a.spec, "--store", a.store, "--force"))
    res["embedded_warm_s"], _ = timed(lambda: envgen("build", a.spec, "--store", a.store))
    res.update(nix_path=path, nix_digest=cold["tree_digest"], embedded_digest=emb["tree_digest"],
               entries=cold["files"], bytes=cold["bytes"])
    e, n = norm(listing(Path(emb["path"]))), norm(listing(Path(path)))
    res["tree_only_embedded"] = sorted(set(e) - set(n))
    res["tree_only_nix"] = sorted(set(n) - set(e))
    res["tree_differ"] = sorted(p for p in set(e) & set(n) if e[p] != n[p])
    proc = subprocess.run(["nix-store", "--verify-path", path], env=nixb.nix_env(), capture_output=True)
    res["verify_path_ok"] = proc.returncode == 0
    if a.json:
        print(json.dumps(res, indent=2, sort_keys=True))
    else:
        for k, v in res.items():
            print(f"{k:22} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
