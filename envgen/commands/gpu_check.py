"""envgen gpu-check SPEC [--variant V]"""

from __future__ import annotations

import json

from ..cli import dedent
from . import variant_option

# Runs inside the env, on its own Python (standard library only): the env's CUDA runtime (libcudart of the
# nvidia-cuda-runtime-cu12 wheel, or of a framework's wheels) through ctypes, else torch if the env has it.
# It prints one JSON line.
PROBE = r'''
import ctypes, glob, json, os, sys
out = {"via": None}
def done(**kw):
    out.update(kw); print(json.dumps(out, sort_keys=True)); sys.exit(0)
libs = sorted(glob.glob(sys.prefix + "/lib/python3*/site-packages/nvidia/*/lib/libcudart.so*")
              + glob.glob(sys.prefix + "/lib/python3*/site-packages/*/lib/libcudart.so*"))
if not libs:
    try:
        import torch
    except ImportError:
        done(error="the env has no CUDA runtime (no libcudart.so in its site-packages, no torch)")
    if not torch.cuda.is_available():
        done(via="torch", error="torch sees no CUDA device", runtime_version=torch.version.cuda)
    x = torch.arange(1 << 18, dtype=torch.float32)
    y = x.cuda().mul(2).cpu()
    done(via="torch", runtime_version=torch.version.cuda, device_count=torch.cuda.device_count(),
         device=torch.cuda.get_device_name(0), roundtrip_ok=bool(torch.equal(y, x * 2)), bytes=x.numel() * 4)
rt = ctypes.CDLL(libs[0])
out["via"] = "libcudart " + os.path.basename(libs[0])
def call(name, *args):
    rc = getattr(rt, name)(*args)
    if rc != 0:
        rt.cudaGetErrorString.restype = ctypes.c_char_p
        done(error=f"{name}: {rt.cudaGetErrorString(rc).decode()} (cudaError {rc})", **ver)
v = ctypes.c_int()
ver = {}
rt.cudaRuntimeGetVersion(ctypes.byref(v)); ver["runtime_version"] = f"{v.value // 1000}.{(v.value % 1000) // 10}"
v.value = 0
rt.cudaDriverGetVersion(ctypes.byref(v))  # 0: no driver was loaded
if v.value > 0:
    ver["driver_cuda_version"] = f"{v.value // 1000}.{(v.value % 1000) // 10}"
n = ctypes.c_int()
call("cudaGetDeviceCount", ctypes.byref(n))
props = ctypes.create_string_buffer(8192)  # cudaDeviceProp begins with char name[256]
getprops = getattr(rt, "cudaGetDeviceProperties_v2", None) or rt.cudaGetDeviceProperties
if getprops(props, 0) != 0:
    done(error="cudaGetDeviceProperties failed", **ver)
name = props.raw[:256].split(b"\0", 1)[0].decode(errors="replace")
size = 1 << 20
src = (ctypes.c_ubyte * size)(*[(i * 7) & 0xFF for i in range(size)])
back = (ctypes.c_ubyte * size)()
dev = ctypes.c_void_p()
call("cudaMalloc", ctypes.byref(dev), ctypes.c_size_t(size))
call("cudaMemcpy", dev, src, ctypes.c_size_t(size), 1)   # host to device
call("cudaMemcpy", back, dev, ctypes.c_size_t(size), 2)  # device to host
call("cudaFree", dev)
done(device_count=n.value, device=name, roundtrip_ok=bytes(src) == bytes(back), bytes=size, **ver)
'''


def register(sub, parents, fmt):
    p = sub.add_parser(
        "gpu-check",
        parents=parents,
        formatter_class=fmt,
        help="run a tiny CUDA computation inside the env with the host's GPU, and compare CUDA versions",
        description=dedent(
            """\
            Check that SPEC's env (usually a CUDA variant: --variant cuda12) reaches
            the host's GPU: build it if needed, run it with --gpu (the host's device
            nodes and driver libraries bound in, as `envgen run --gpu` does) and, on
            the env's own Python, load the env's CUDA runtime (libcudart from the
            nvidia-cuda-runtime-cu12 wheel, or torch): device count and name, and a
            1 MiB cudaMemcpy round trip to the device and back.

            Prints the device, the driver version and the CUDA version the driver
            supports, and the CUDA runtime version of the env; warns when the env's
            CUDA runtime is newer than the driver supports (the classic mismatch:
            such an env needs a newer driver, or CUDA's forward-compatibility package).
            Exit status 0 when the computation ran and the round trip held, 1 when
            it did not. On a host without an NVIDIA GPU: one line, exit status 2.
            The check is not recorded as a run.
            """
        ),
        epilog=dedent(
            """\
            examples:
              envgen gpu-check specs/tiny-gpu.toml --variant cuda12
              envgen gpu-check specs/tiny-gpu.toml --variant cuda12 --runtime podman --json
            """
        ),
    )
    p.add_argument("spec", metavar="SPEC", help="a spec (its lock is read) or a pylock.*.toml")
    variant_option(p)
    p.add_argument("--runtime", default="bwrap", choices=["bwrap", "sif", "podman", "apptainer"],
                   help="how to run the check (default: bwrap)")
    p.set_defaults(func=run)


def check_versions(env_runtime: str | None, driver_cuda: str | None) -> str | None:
    """The warning when the env's CUDA runtime is newer than the CUDA version the host's driver supports."""
    from ..gpu import version_tuple

    if not env_runtime or not driver_cuda:
        return None
    if version_tuple(env_runtime) > version_tuple(driver_cuda):
        return (f"the env's CUDA runtime is {env_runtime} but the host's driver supports CUDA {driver_cuda}: "
                f"the env needs a newer driver (one that supports CUDA {env_runtime}) or CUDA's "
                "forward-compatibility package")
    return None


def run(args, ui) -> int:
    from ..gpu import facts as gpu_facts
    from ..gpu import require

    gpu = require()  # first: no GPU is one line, exit 2, before anything is built
    import subprocess

    from ..run.execute import RunRequest, launch_argv
    from ..runtimes import prepare
    from ..snapshot.store import open_store

    store = open_store(args.store)
    runtime, env, _ = prepare(store, args.spec, args.runtime, ui, args.variant)
    req = RunRequest(command=["python3", "-I", "-c", PROBE], gpu=gpu)
    argv = launch_argv(runtime, env, req)
    host = gpu_facts(gpu)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    try:
        probe = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        probe = {"error": f"the probe printed no result (exit {proc.returncode}): "
                          f"{(proc.stderr.strip().splitlines() or [''])[-1]}"}
    warning = check_versions(probe.get("runtime_version"), probe.get("driver_cuda_version")
                             or host.get("cuda_driver_version"))
    ok = not probe.get("error") and bool(probe.get("roundtrip_ok"))
    result = {"ok": ok, "runtime": runtime.name, "env": env.env_name, "tree_digest": env.tree_digest,
              "host": host, "probe": probe, "warning": warning}
    if warning:
        ui.warn(warning)

    def human(out):
        out.print(f"{env.env_name} ({runtime.name}): " + ("ok" if ok else f"FAILED: {probe.get('error')}"))
        out.print(f"  device: {probe.get('device') or ', '.join(host['gpus']) or '?'} "
                  f"({probe.get('device_count', '?')} visible), via {probe.get('via')}")
        out.print(f"  driver {host.get('driver_version')}, supports CUDA {host.get('cuda_driver_version')}; "
                  f"env CUDA runtime {probe.get('runtime_version')}")
        if probe.get("bytes"):
            out.print(f"  round trip of {probe['bytes']} bytes: {'held' if probe.get('roundtrip_ok') else 'DIFFERED'}")

    ui.emit(result, human)
    return 0 if ok else 1
