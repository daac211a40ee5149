"""GPU support without a GPU: driver discovery from a fake driver tree, the binds each runtime gets,
the one-line refusal on a host without a GPU, spec variants, and the CUDA layer of images."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from gpu_fake import BINARIES, CAPS, COMPUTE_UTILITY, GRAPHICS, LIBDIR, OTHER_BINARIES, VERSION, write_driver_tree

from envgen import gpu
from envgen.errors import SpecError
from envgen.spec import parse_spec
from helpers import REPO, require_tool, run_envgen

TINY = REPO / "tests" / "fixtures" / "tiny" / "specs" / "tiny.toml"


@pytest.fixture
def driver(tmp_path) -> Path:
    return write_driver_tree(tmp_path / "host")


# --------------------------------------------------------------------------- discovery and binds


def test_bind_list_from_a_fake_550_driver_tree(driver):
    found = gpu.discover(driver, machine="x86_64")
    assert found is not None
    binds = gpu.bind_list(found)
    lib = driver / LIBDIR
    want = [("dev", str(driver / "dev" / n), f"/dev/{n}")
            for n in ("nvidiactl", "nvidia0", "nvidia1", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")]
    want += [("dev", str(driver / "dev/nvidia-caps" / n), f"/dev/nvidia-caps/{n}") for n in CAPS]
    want += [("symlink", target, f"{gpu.GPU_LIB}/{name}") if target
             else ("ro", str(lib / name), f"{gpu.GPU_LIB}/{name}") for name, target in sorted(COMPUTE_UTILITY)]
    want += [("ro", str(driver / "usr/bin" / n), f"{gpu.GPU_BIN}/{n}") for n in sorted(BINARIES + ["nvidia-smi"])]
    assert binds == want
    names = {Path(dst).name for _, _, dst in binds}
    assert not names & set(GRAPHICS + OTHER_BINARIES + ["libGLX_nvidia.so.0", "null"])
    assert all("i386" not in src for _, src, _ in binds)  # 32-bit libraries are never bound
    # every library the driver ships for compute and utility is found, under each of its names
    assert {n for n in names if n.startswith("lib")} == {n for n, _ in COMPUTE_UTILITY}


def test_bwrap_and_podman_options(driver, tmp_path):
    found = gpu.discover(driver, machine="x86_64")
    args = gpu.bwrap_args(found)
    assert args[:3] == ["--dev-bind", str(driver / "dev/nvidiactl"), "/dev/nvidiactl"]
    i = args.index(f"{gpu.GPU_LIB}/libcuda.so.1")
    assert args[i - 2:i] == ["--symlink", f"libcuda.so.{VERSION}"]
    env = gpu.sandbox_env({"LD_LIBRARY_PATH": "/opt/x", "A": "b"}, "/usr/bin:/bin")
    assert env == {"LD_LIBRARY_PATH": f"{gpu.GPU_LIB}:/opt/x", "A": "b", "PATH": f"/usr/bin:/bin:{gpu.GPU_BIN}"}

    pod = gpu.podman_args(found)  # no CDI spec: the same binds, links bound to the files they name
    node = f"{driver}/dev/nvidia1:/dev/nvidia1"
    assert pod[pod.index(node) - 1] == "--device"
    assert f"{driver / LIBDIR}/libcuda.so.{VERSION}:{gpu.GPU_LIB}/libcuda.so:ro" in pod  # libcuda.so -> .1 -> file
    with_cdi = write_driver_tree(tmp_path / "cdi-host", cdi=True)
    assert gpu.podman_args(gpu.discover(with_cdi, machine="x86_64")) == ["--device", "nvidia.com/gpu=all"]


def test_facts_from_the_driver(driver):
    facts = gpu.facts(gpu.discover(driver, machine="x86_64"))
    assert facts["gpus"] == ["NVIDIA H200", "NVIDIA H200"]
    assert facts["driver_version"] == VERSION
    assert facts["cuda_driver_version"] == "12.4"
    assert facts["devices"][:3] == ["/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia1"]


def test_no_gpu_is_refused(tmp_path, driver):
    assert gpu.discover(tmp_path / "nothing") is None
    (tmp_path / "bare" / "dev").mkdir(parents=True)
    (tmp_path / "bare" / "dev" / "nvidia0").write_text("")  # a node but no nvidiactl: no usable GPU
    assert gpu.discover(tmp_path / "bare") is None
    with pytest.raises(gpu.GpuUnavailable, match="no NVIDIA GPU on this host"):
        gpu.require(tmp_path / "bare")
    for f in (driver / LIBDIR).glob("libcuda.so*"):
        f.unlink()
    with pytest.raises(gpu.GpuUnavailable, match="no driver library libcuda.so"):
        gpu.require(driver)


def test_bwrap_shows_the_driver_read_only(driver):
    """The binds as bwrap takes them, over the host's own root: libraries, links, devices, nvidia-smi."""
    require_tool("bwrap")
    from envgen.runtimes.base import Env, Launch
    from envgen.runtimes.bwrap import RUNTIME

    found = gpu.discover(driver, machine="x86_64")
    env = Env(rootfs=Path("/"), runtime="bwrap", builder="embedded", snapshot_id="", tree_digest="", build_key="",
              env_name="host")
    script = (f"cat {gpu.GPU_LIB}/libcuda.so; echo; readlink {gpu.GPU_LIB}/libcuda.so.1; echo \"$LD_LIBRARY_PATH\"; "
              "ls /dev/nvidia-caps; nvidia-smi --query-gpu=name --format=csv,noheader | head -1; "
              f"touch {gpu.GPU_LIB}/x 2>/dev/null && echo WRITABLE || echo read-only")
    argv = RUNTIME.argv(env, Launch(["/bin/sh", "-c", script], {}, [], network=True, gpu=found))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"\x7fELF fake libcuda.so.{VERSION}", f"libcuda.so.{VERSION}", gpu.GPU_LIB,
                                       *CAPS, f"NVIDIA H200, {VERSION}", "read-only"]


# --------------------------------------------------------------------------- the CLI on a host without a GPU


@pytest.mark.parametrize("args", [["run", str(TINY), "--gpu", "--", "true"],
                                  ["gpu-check", str(TINY), "--variant", "cuda12"]])
def test_gpu_without_a_gpu_is_one_line_exit_2(tmp_path, args):
    """Refused before the spec is even read (tiny.toml has no lock and no variant here)."""
    proc = run_envgen(*args, env={"ENVGEN_GPU_ROOT": str(tmp_path)})
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "no NVIDIA GPU on this host" in proc.stderr
    j = run_envgen(*args[:2], "--json", *args[2:], env={"ENVGEN_GPU_ROOT": str(tmp_path)})
    assert j.returncode == 2 and json.loads(j.stdout)["error"]["type"] == "GpuUnavailable"


def test_gpu_on_this_host():
    """On the real host: a GPU-less one refuses --gpu in one line (never runs on the CPU instead)."""
    if gpu.discover("/") is not None:
        pytest.skip("this host has an NVIDIA GPU (bench/gpu_check.sh covers it)")
    env = {k: v for k, v in os.environ.items() if k != "ENVGEN_GPU_ROOT"}
    proc = subprocess.run([*__import__("helpers").ENVGEN, "run", str(TINY), "--gpu", "--", "true"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no NVIDIA GPU" in proc.stderr


# --------------------------------------------------------------------------- variants in the spec and the lock

VARIANT_SPEC = """
name = "tiny"
snapshot-date = 2025-05-08T00:00:00Z
python = "3.11"
requirements = ["six==1.17.0", "packaging==25.0"]
constraints = ["idna<4"]

[variants.cuda12]
description = "the CUDA 12 runtime"
requirements = ["nvidia-cuda-runtime-cu12==12.8.90", "packaging==24.2"]
"""


def test_variants_merge_and_name_their_locks():
    spec = parse_spec(VARIANT_SPEC.encode(), "/p/specs/tiny.toml")
    assert spec.variant is None and spec.lock_path == Path("/p/specs/pylock.tiny.toml")
    v = spec.for_variant("cuda12")
    assert v.requirements == ["six==1.17.0", "packaging==24.2", "nvidia-cuda-runtime-cu12==12.8.90"]
    assert v.constraints == ["idna<4"]
    assert (v.env_name, v.lock_path, v.sha256) == ("tiny-cuda12", Path("/p/specs/pylock.tiny.cuda12.toml"),
                                                   spec.sha256)
    assert spec.for_variant(None) is spec
    with pytest.raises(SpecError, match=r"no variant 'rocm' \(the spec's variants: cuda12\)"):
        spec.for_variant("rocm")


@pytest.mark.parametrize("table, key", [
    ('[variants.Cuda]\nrequirements = ["x"]', "variants.Cuda"),
    ("[variants.cuda12]\n", "variants.cuda12"),
    ('[variants.cuda12]\nrequirements = ["x @ https://h/x.whl"]', "variants.cuda12.requirements[0]"),
    ('[variants.cuda12]\nrequirements = ["x", "X"]', "variants.cuda12.requirements[1]"),
    ('[variants.cuda12]\nextra = 1', "variants.cuda12.extra"),
    ('[variants.cuda12]\nrequirements = "x"', "variants.cuda12.requirements"),
])
def test_bad_variants_are_one_line(table, key):
    with pytest.raises(SpecError, match=re.escape(f"key '{key}")):
        parse_spec((VARIANT_SPEC.split("[variants")[0] + table).encode(), "s.toml")


def test_only_a_variant_lock_names_its_variant():
    from envgen.lock import pylock
    from helpers import make_lock

    lock = make_lock({"six": ("1.17.0", [])})
    text = pylock.dumps(lock)
    assert "variant" not in text  # a default env's lock keeps the bytes it had before variants existed
    lock.variant, lock.name = "cuda12", "demo-cuda12"
    again = pylock.loads(pylock.dumps(lock), Path("pylock.demo.cuda12.toml"))
    assert (again.variant, again.name) == ("cuda12", "demo-cuda12")
    assert pylock.loads(text, Path("pylock.demo.toml")).variant is None


# --------------------------------------------------------------------------- the CUDA layer


def _dist(site: Path, dist: str, version: str, files: dict[str, int]) -> None:
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    for rel, size in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        with open(site / rel, "wb") as fh:
            fh.truncate(size)  # sparse: the layering reads sizes only
    (info / "RECORD").write_text("".join(f"{rel},," + "\n" for rel in files) + f"{info.name}/RECORD,,\n")


def test_cuda_wheels_get_their_own_layers(tmp_path):
    from envgen.export.layers import BIG_DIST_BYTES, plan_layers

    root = tmp_path / "tree"
    site = root / "opt/env/lib/python3.11/site-packages"
    _dist(site, "six", "1.17.0", {"six.py": 1000})
    _dist(site, "nvidia-cuda-runtime-cu12", "12.8.90",
          {"nvidia/cuda_runtime/lib/libcudart.so.12": 700_000, "nvidia/cuda_runtime/__init__.py": 0})
    _dist(site, "nvidia-cublas-cu12", "12.8.4.1", {"nvidia/cublas/lib/libcublas.so.12": BIG_DIST_BYTES + 1})
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/libc.so.6").write_bytes(b"x")
    layers = {layer.name: layer for layer in plan_layers(root)}
    assert list(layers) == ["debian", "cuda", "dist-nvidia-cublas-cu12", "python", "project"]
    files = {name: [p for p in layer.paths if (root / p).is_file()] for name, layer in layers.items()}
    sp = "opt/env/lib/python3.11/site-packages"
    assert files["cuda"] == [f"{sp}/nvidia/cuda_runtime/__init__.py", f"{sp}/nvidia/cuda_runtime/lib/libcudart.so.12",
                             f"{sp}/nvidia_cuda_runtime_cu12-12.8.90.dist-info/RECORD"]
    assert files["dist-nvidia-cublas-cu12"] == [f"{sp}/nvidia/cublas/lib/libcublas.so.12",
                                                f"{sp}/nvidia_cublas_cu12-12.8.4.1.dist-info/RECORD"]
    assert files["python"] == [f"{sp}/six-1.17.0.dist-info/RECORD", f"{sp}/six.py"]


def test_a_records_variant_is_found_by_its_env_name(tmp_path):
    from types import SimpleNamespace

    from envgen.run.rerun import _variant_of

    spec = tmp_path / "tiny.toml"
    spec.write_text(VARIANT_SPEC)
    assert _variant_of(SimpleNamespace(spec=str(spec), env_name="tiny-cuda12")) == "cuda12"
    assert _variant_of(SimpleNamespace(spec=str(spec), env_name="tiny")) is None
    assert _variant_of(SimpleNamespace(spec=str(tmp_path / "gone.toml"), env_name="tiny-cuda12")) is None
