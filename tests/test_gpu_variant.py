"""A CUDA variant of the tiny spec, end to end without a GPU (marked network + slow).

The variant adds PyPI's nvidia-cuda-runtime-cu12 (a ~1 MB wheel holding libcudart): it locks into its
own lock next to the default one (which stays as it was), snapshots, builds, runs (its libcudart loads),
exports reproducibly with the CUDA wheel in a layer of its own, archives and verifies; --gpu over a fake
driver tree binds it in, records the driver, and gpu-check warns about the CUDA version mismatch.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from gpu_fake import VERSION, write_driver_tree

from helpers import REPO, run_envgen

pytestmark = [pytest.mark.network, pytest.mark.slow]

VARIANT = """
[variants.cuda12]
description = "the CUDA 12 runtime"
requirements = ["nvidia-cuda-runtime-cu12==12.8.90"]
"""
CUDART_VERSION = ("import ctypes, glob; p = glob.glob('/opt/env/lib/python3.11/site-packages/nvidia/cuda_runtime/lib/"
                  "libcudart.so.12'); rt = ctypes.CDLL(p[0]); v = ctypes.c_int(); "
                  "rt.cudaRuntimeGetVersion(ctypes.byref(v)); print(v.value)")


@pytest.fixture(scope="module")
def cuda(tmp_path_factory):
    root = tmp_path_factory.mktemp("cuda")
    shutil.copytree(REPO / "tests" / "fixtures" / "tiny", root / "plain")  # the spec without variants
    shutil.copytree(REPO / "tests" / "fixtures" / "tiny", root / "proj")
    spec = root / "proj" / "specs" / "tiny.toml"
    spec.write_text(spec.read_text() + VARIANT)
    store = root / "store"
    locked = json.loads(run_envgen("lock", str(spec), "--json", check=True).stdout)
    run_envgen("lock", str(root / "plain" / "specs" / "tiny.toml"), check=True)
    built = {}
    for v in ([], ["--variant", "cuda12"]):
        run_envgen("snapshot", str(spec), *v, "--store", str(store), "-q", check=True)
        built[v[-1] if v else "default"] = json.loads(
            run_envgen("build", str(spec), *v, "--store", str(store), "--json", check=True).stdout)
    host = write_driver_tree(root / "fakehost")
    return SimpleNamespace(root=root, spec=spec, store=store, locked=locked, built=built, host=host)


def test_one_lock_per_variant_and_the_default_one_unchanged(cuda):
    from envgen.lock import pylock

    specs = cuda.spec.parent
    assert sorted(p.name for p in specs.glob("pylock.*")) == ["pylock.tiny.cuda12.toml", "pylock.tiny.toml"]
    assert cuda.locked["variants"]["cuda12"]["lock"] == str(specs / "pylock.tiny.cuda12.toml")
    default, variant = pylock.load(specs / "pylock.tiny.toml"), pylock.load(specs / "pylock.tiny.cuda12.toml")
    assert (default.variant, variant.variant, variant.name) == (None, "cuda12", "tiny-cuda12")
    pins = {p.name: p.version for p in variant.packages}
    assert pins.pop("nvidia-cuda-runtime-cu12") == "12.8.90"
    assert pins == {p.name: p.version for p in default.packages}
    assert variant.debian.packages == default.debian.packages
    # the default lock is what the spec without [variants] locks to, but for the spec's own hash
    plain = (cuda.root / "plain" / "specs" / "pylock.tiny.toml").read_text().splitlines()
    ours = (specs / "pylock.tiny.toml").read_text().splitlines()
    assert [a == b for a, b in zip(plain, ours, strict=True)].count(False) == 1
    assert [b for a, b in zip(plain, ours, strict=True) if a != b][0].startswith("spec-sha256 = ")


def test_the_variant_builds_and_runs_its_cuda_runtime(cuda):
    d, v = cuda.built["default"], cuda.built["cuda12"]
    assert d["tree_digest"] != v["tree_digest"]
    lib = "opt/env/lib/python3.11/site-packages/nvidia/cuda_runtime/lib/libcudart.so.12"
    assert (Path(v["path"]) / lib).is_file() and not (Path(d["path"]) / lib).exists()
    proc = run_envgen("run", str(cuda.spec), "--variant", "cuda12", "--store", str(cuda.store),
                      "--", "python3", "-c", CUDART_VERSION)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "12080"  # CUDA 12.8, without any GPU or driver
    assert run_envgen("run", str(cuda.spec), "--store", str(cuda.store), "--", "python3", "-c",
                      CUDART_VERSION).returncode == 1  # the default env has no libcudart


def test_gpu_over_a_fake_driver_binds_it_and_records_it(cuda):
    env = {"ENVGEN_GPU_ROOT": str(cuda.host)}
    proc = run_envgen("run", str(cuda.spec), "--variant", "cuda12", "--store", str(cuda.store), "--gpu", "--json",
                      "--", "sh", "-c", "nvidia-smi --query-gpu=name --format=csv,noheader; echo $LD_LIBRARY_PATH",
                      env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[:3] == [f"NVIDIA H200, {VERSION}", f"NVIDIA H200, {VERSION}", "/.envgen-gpu/lib"]
    run_id = json.loads(proc.stdout)["run"]
    rec = json.loads(run_envgen("runs", "show", run_id, "--store", str(cuda.store), "--json", check=True).stdout)
    rec = rec.get("run", rec)
    assert rec["env_name"] == "tiny-cuda12"
    assert rec["host"]["gpu"]["driver_version"] == VERSION and rec["host"]["gpu"]["cuda_driver_version"] == "12.4"
    assert rec["host"]["gpu"]["gpus"] == ["NVIDIA H200", "NVIDIA H200"]

    check = run_envgen("gpu-check", str(cuda.spec), "--variant", "cuda12", "--store", str(cuda.store), "--json",
                       env=env)
    assert check.returncode == 1, check.stderr  # the fake libcuda cannot be loaded: the computation fails
    result = json.loads(check.stdout)
    assert result["probe"]["runtime_version"] == "12.8" and "cudaGetDeviceCount" in result["probe"]["error"]
    assert "CUDA runtime is 12.8 but the host's driver supports CUDA 12.4" in result["warning"]


def _oci_layers(oci: Path) -> tuple[str, dict[str, tuple[str, list[str]]]]:
    index = json.loads((oci / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads((oci / "blobs" / "sha256" / digest.split(":")[1]).read_text())
    layers = {}
    for la in manifest["layers"]:
        blob = (oci / "blobs" / "sha256" / la["digest"].split(":")[1]).read_bytes()
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tf:
            names = [m.name for m in tf.getmembers() if not m.isdir()]
        layers[la["annotations"]["dev.envgen.layer"]] = (la["digest"], names)
    return digest, layers


def test_a_sweep_runs_the_variant_and_shows_each_point_the_gpus(cuda, tmp_path):
    """`envgen sweep --variant cuda12 --gpu`: every point runs in the variant's env (its own tree) with the
    (fake) driver bound in and recorded; without a GPU on the host, the sweep is refused before it starts."""
    env = {"ENVGEN_GPU_ROOT": str(cuda.host)}
    out = tmp_path / "sweep"
    proc = run_envgen("sweep", str(cuda.spec), "--variant", "cuda12", "--gpu", "--store", str(cuda.store),
                      "--param", "n=1,2", "--out", str(out), "--json", "--", "sh", "-c",
                      f"python3 -c \"{CUDART_VERSION}\" > {{out}}/cudart.txt; "
                      "nvidia-smi --query-gpu=name --format=csv,noheader > {out}/gpus.txt",
                      env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "sweep.json").read_text())
    assert (doc["variant"], doc["gpu"]) == ("cuda12", True)
    points = json.loads(proc.stdout)["points"]
    assert [p["state"] for p in points] == ["completed", "completed"]
    for p in points:
        pdir = out / "points" / f"{p['index']:03d}"
        assert (pdir / "cudart.txt").read_text().strip() == "12080"
        assert "NVIDIA H200" in (pdir / "gpus.txt").read_text()
        rec = json.loads(run_envgen("runs", "show", p["run_id"], "--store", str(cuda.store), "--json",
                                    check=True).stdout)
        rec = rec.get("run", rec)
        assert rec["env_name"] == "tiny-cuda12"
        assert rec["tree_digest"] == cuda.built["cuda12"]["tree_digest"] != cuda.built["default"]["tree_digest"]
        assert rec["host"]["gpu"]["driver_version"] == VERSION
    # a point whose host has no GPU (a node without one) fails, saying why, and never runs on the CPU
    task = run_envgen("sweep", "task", str(out), "1", env={"ENVGEN_GPU_ROOT": str(tmp_path / "empty")})
    assert task.returncode == 2 and "Traceback" not in task.stderr
    row = json.loads(run_envgen("sweep", "status", str(out), "--json", check=False).stdout)["points"][1]
    assert row["state"] == "failed" and row["exit_status"] == 2 and "GPU" in row["error"], row
    bare = run_envgen("sweep", str(cuda.spec), "--variant", "cuda12", "--gpu", "--store", str(cuda.store),
                      "--param", "n=1", "--out", str(tmp_path / "nogpu"), "--", "true",
                      env={"ENVGEN_GPU_ROOT": str(tmp_path / "empty")})
    assert bare.returncode == 2 and len(bare.stderr.strip().splitlines()) == 1 and "Traceback" not in bare.stderr
    assert not (tmp_path / "nogpu").exists()


def test_cuda_images_are_reproducible_with_the_cuda_wheel_in_its_own_layer(cuda, tmp_path):
    digests = []
    for n in (1, 2):
        proc = run_envgen("export", str(cuda.spec), "--variant", "cuda12", "--store", str(cuda.store), "--format",
                          "oci", "-o", str(tmp_path / f"v{n}.oci"), "--json", check=True)
        digests.append(json.loads(proc.stdout)["manifest_digest"])
    assert digests[0] == digests[1]
    digest, layers = _oci_layers(tmp_path / "v1.oci")
    assert digest == digests[0]
    cuda_layers = [n for n in layers if n == "cuda" or n.startswith("dist-nvidia-")]
    assert cuda_layers
    for name, (_, files) in layers.items():
        nvidia = [f for f in files if "/site-packages/nvidia" in f]
        assert (name in cuda_layers) == bool(nvidia), name
        if name in cuda_layers:
            assert nvidia == files  # nothing but the CUDA wheels there
    run_envgen("export", str(cuda.spec), "--store", str(cuda.store), "--format", "oci", "-o",
               str(tmp_path / "cpu.oci"), check=True)
    _, cpu = _oci_layers(tmp_path / "cpu.oci")
    assert cpu["debian"][0] == layers["debian"][0]  # the CUDA variant shares the CPU env's OS layer


def test_a_variant_bundle_verifies(cuda, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = run_envgen("run", str(cuda.spec), "--variant", "cuda12", "--store", str(cuda.store), "--json",
                      "--bind", f"{out}:/out", "--", "sh", "-c", f"python3 -c \"{CUDART_VERSION}\" > /out/v.txt")
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run"]
    bundle = tmp_path / "cuda.tar.zst"
    run_envgen("archive", str(cuda.spec), "--variant", "cuda12", "--store", str(cuda.store), "--with-runs",
               "--run", run_id, "-o", str(bundle), check=True)
    proc = subprocess.run(["unshare", "-n", sys.executable, "-m", "envgen", "verify", str(bundle), "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["level"] == "reproduced" and result["tree_digest"] == cuda.built["cuda12"]["tree_digest"]
    assert result["name"] == "tiny-cuda12"
