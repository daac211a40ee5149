"""The host's NVIDIA GPUs: what ``--gpu`` binds into an env, for every runtime.

:func:`discover` looks at a host root (``/``, or a fake driver tree in a
test) for

* the device nodes: ``/dev/nvidiactl``, ``/dev/nvidia0..N``, ``/dev/nvidia-uvm``,
  ``/dev/nvidia-uvm-tools``, ``/dev/nvidia-modeset`` and ``/dev/nvidia-caps/*``;
* the driver's user-space libraries of the *compute* and *utility*
  capabilities, the set ``nvidia-container-cli list`` names by default
  (NVIDIA_DRIVER_CAPABILITIES=compute,utility) and Apptainer's
  ``nvliblist.conf`` holds (less its graphics and video libraries):
  :data:`DRIVER_LIBS`, each as every file ``NAME`` or ``NAME.*`` in the
  64-bit library directories (and, on the real host, those ``ldconfig -p``
  knows);
* the driver's programs, :data:`DRIVER_BINS` (``nvidia-smi`` …).

A runtime then shows them to the command: bwrap (and the ``sif`` runtime)
binds the devices, and the libraries and programs read-only at :data:`GPU_LIB`
and :data:`GPU_BIN`, which go on ``LD_LIBRARY_PATH`` and ``PATH``
(:func:`bwrap_args`, :func:`sandbox_env`); podman takes the CDI device
``nvidia.com/gpu=all`` where a CDI spec exists, else the same binds
(:func:`podman_args`); Apptainer takes ``--nv``.  No GPU: one line, exit
status 2 (:class:`GpuUnavailable`), never a silent fall-back to the CPU.

Only ``--gpu`` imports this module: a run without it pays nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .errors import EnvgenError
from .values import Value

# Inside every env: the host driver's libraries and programs (a top-level directory: the tree's own
# directories are read-only binds, in which nothing can be created).
GPU_DIR = "/.envgen-gpu"
GPU_LIB = f"{GPU_DIR}/lib"
GPU_BIN = f"{GPU_DIR}/bin"

# libnvidia-container's compute and utility libraries (src/nvc_info.c: utility_libs, compute_libs),
# which Apptainer's nvliblist.conf lists too; a file is one of them when its name is NAME or NAME.*
DRIVER_LIBS = (
    "libcuda.so", "libcudadebugger.so", "libnvidia-allocator.so", "libnvidia-cfg.so", "libnvidia-compiler.so",
    "libnvidia-fatbinaryloader.so", "libnvidia-gpucomp.so", "libnvidia-ml.so", "libnvidia-nscq.so",
    "libnvidia-nvvm.so", "libnvidia-opencl.so", "libnvidia-pkcs11.so", "libnvidia-pkcs11-openssl3.so",
    "libnvidia-ptxjitcompiler.so",
)
# utility_bins and compute_bins there (nvliblist.conf's "binaries")
DRIVER_BINS = ("nvidia-smi", "nvidia-debugdump", "nvidia-persistenced", "nvidia-cuda-mps-control",
               "nvidia-cuda-mps-server")
DEVICE_NAMES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
_GPU_NODE = re.compile(r"^nvidia[0-9]+$")
BIN_DIRS = ("usr/bin", "usr/local/bin", "bin", "usr/local/nvidia/bin", "usr/lib/wsl/lib")
CDI_DIRS = ("etc/cdi", "var/run/cdi", "run/cdi")


def lib_dirs(machine: str) -> tuple[str, ...]:
    """The 64-bit library directories a driver installs into (relative to the root); 32-bit ones never."""
    triplet = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(machine, f"{machine}-linux-gnu")
    return (f"usr/lib/{triplet}", f"lib/{triplet}", "usr/lib64", "lib64", f"usr/lib/{triplet}/nvidia/current",
            "usr/local/nvidia/lib64", "usr/lib/wsl/lib", "usr/lib")


class GpuUnavailable(EnvgenError):
    """``--gpu`` on a host without a usable NVIDIA GPU."""


class DriverFile(Value):
    """One library or program of the driver: *name* inside, and a host file, or a link to another name."""

    def __init__(self, name: str, host: str | None = None, link: str | None = None):
        self.name = name
        self.host = host  # the host file (symlinks resolved)
        self.link = link  # for a symlink to another driver file: that file's name


class GpuHost(Value):
    """What :func:`discover` found under *root*."""

    def __init__(self, root: str, devices: list[str], libs: list[DriverFile], bins: list[DriverFile],
                 cdi: list[str]):
        self.root = root
        self.devices = devices  # host paths of the device nodes (each is bound at its own path under /dev)
        self.libs = libs
        self.bins = bins
        self.cdi = cdi  # CDI spec files that name nvidia.com/gpu

    def inside(self, device: str) -> str:
        """The path of a host device node inside the env (its path under the root)."""
        return "/" + os.path.relpath(device, self.root)


def _ldconfig_dirs() -> list[str]:
    """The directories ``ldconfig -p`` finds the driver's libraries in (the real host only)."""
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10,
                             env={"LC_ALL": "C", "PATH": "/usr/sbin:/sbin:/usr/bin:/bin"}).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    dirs: list[str] = []
    for line in out.splitlines():
        name, _, rest = line.strip().partition(" ")
        if "=>" not in rest or "x86-64" not in rest and "AArch64" not in rest:
            continue  # 32-bit
        if any(name == b or name.startswith(b + ".") for b in DRIVER_LIBS):
            d = os.path.dirname(rest.split("=>", 1)[1].strip())
            if d not in dirs:
                dirs.append(d)
    return dirs


def _is_driver_lib(name: str) -> bool:
    return any(name == b or name.startswith(b + ".") for b in DRIVER_LIBS)


def _collect(root: Path, dirs: list[str], wanted) -> list[DriverFile]:
    """The driver files in *dirs* (first directory wins a name), symlinks among them kept as links."""
    found: dict[str, Path] = {}
    for d in dirs:
        full = root / d.lstrip("/")
        try:
            names = sorted(os.listdir(full))
        except OSError:
            continue
        for name in names:
            if name not in found and wanted(name) and (full / name).is_file():
                found[name] = full / name
    out = []
    for name, path in sorted(found.items()):
        if path.is_symlink():
            target = os.readlink(path)
            if "/" not in target and target in found:
                out.append(DriverFile(name, link=target))
                continue
        out.append(DriverFile(name, host=str(path.resolve())))
    return out


def discover(root: str | Path = "/", machine: str | None = None) -> GpuHost | None:
    """The NVIDIA driver and devices of the host at *root*, or None when it has no GPU to give."""
    root = Path(root)
    dev = root / "dev"
    try:
        nodes = sorted(n for n in os.listdir(dev) if _GPU_NODE.match(n))
    except OSError:
        return None
    if not nodes or not (dev / "nvidiactl").exists():
        return None
    devices = [str(dev / n) for n in ("nvidiactl", *sorted(nodes, key=lambda n: int(n[6:])), *DEVICE_NAMES[1:])
               if (dev / n).exists()]
    caps = dev / "nvidia-caps"
    if caps.is_dir():
        devices += [str(caps / n) for n in sorted(os.listdir(caps))]
    machine = machine or os.uname().machine
    dirs = list(lib_dirs(machine))
    if str(root) == "/":
        known = _ldconfig_dirs()
        dirs = known + [d for d in dirs if "/" + d not in known]
    libs = _collect(root, dirs, _is_driver_lib)
    bins = _collect(root, list(BIN_DIRS), lambda n: n in DRIVER_BINS)
    cdi = []
    for d in CDI_DIRS:
        full = root / d
        if full.is_dir():
            for name in sorted(os.listdir(full)):
                p = full / name
                if name.endswith((".yaml", ".yml", ".json")) and p.is_file() and _names_nvidia_gpu(p):
                    cdi.append(str(p))
    return GpuHost(str(root), devices, libs, bins, cdi)


def _names_nvidia_gpu(path: Path) -> bool:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return "nvidia.com/gpu" in text or re.search(r"kind\W+nvidia\.com/gpu", text) is not None


def host_root() -> str:
    """Where the host's driver is looked for: ``/``, or ``$ENVGEN_GPU_ROOT`` (a driver tree elsewhere; tests)."""
    return os.environ.get("ENVGEN_GPU_ROOT") or "/"


def require(root: str | Path | None = None) -> GpuHost:
    """:func:`discover`, or the one-line error of ``--gpu`` on a host without a GPU."""
    gpu = discover(host_root() if root is None else root)
    if gpu is None:
        raise GpuUnavailable("--gpu: no NVIDIA GPU on this host (no /dev/nvidiactl and /dev/nvidia0..N)",
                             hint="run without --gpu to use the CPU, or on a GPU node")
    if not any(f.name.startswith("libcuda.so") for f in gpu.libs):
        raise GpuUnavailable("--gpu: the host has NVIDIA devices but no driver library libcuda.so",
                             hint="install the NVIDIA driver's user-space libraries (the CUDA driver)")
    return gpu


# --------------------------------------------------------------------------- what each runtime gets


def bind_list(gpu: GpuHost) -> list[tuple[str, str, str]]:
    """(kind, source, destination) of everything ``--gpu`` shows the command: ``dev`` (a device node),
    ``ro`` (a host file, read-only) or ``symlink`` (source: the link's target)."""
    out = [("dev", d, gpu.inside(d)) for d in gpu.devices]
    for where, files in ((GPU_LIB, gpu.libs), (GPU_BIN, gpu.bins)):
        for f in files:
            if f.link is not None:
                out.append(("symlink", f.link, f"{where}/{f.name}"))
            else:
                assert f.host is not None
                out.append(("ro", f.host, f"{where}/{f.name}"))
    return out


def bwrap_args(gpu: GpuHost) -> list[str]:
    """bwrap options that bind the devices, the libraries and the programs."""
    flag = {"dev": "--dev-bind", "ro": "--ro-bind", "symlink": "--symlink"}
    args: list[str] = []
    for kind, src, dst in bind_list(gpu):
        args += [flag[kind], src, dst]
    return args


def sandbox_env(env: dict[str, str], default_path: str) -> dict[str, str]:
    """*env* with the driver's libraries first on the loader's path, and its programs on PATH."""
    out = dict(env)
    ld = out.get("LD_LIBRARY_PATH")
    out["LD_LIBRARY_PATH"] = GPU_LIB + (f":{ld}" if ld else "")
    out["PATH"] = f"{out.get('PATH', default_path)}:{GPU_BIN}"
    return out


def podman_args(gpu: GpuHost) -> list[str]:
    """podman options: the CDI device where a CDI spec names nvidia.com/gpu, else the same binds as bwrap."""
    if gpu.cdi:
        return ["--device", "nvidia.com/gpu=all"]
    args: list[str] = []
    for kind, src, dst in bind_list(gpu):
        if kind == "dev":
            args += ["--device", f"{src}:{dst}"]
        elif kind == "ro":
            args += ["--volume", f"{src}:{dst}:ro"]
    # podman cannot make a symlink: a link's name is bound to the file it points to
    files = {f.name: f for f in gpu.libs + gpu.bins}
    for f in gpu.libs + gpu.bins:
        if f.link is not None:
            target = files[f.link]
            while target.link is not None:
                target = files[target.link]
            where = GPU_LIB if f in gpu.libs else GPU_BIN
            args += ["--volume", f"{target.host}:{where}/{f.name}:ro"]
    return args


APPTAINER_ARGS = ["--nv"]  # Apptainer binds the nvliblist.conf set and the devices itself


# --------------------------------------------------------------------------- facts for the run record


def facts(gpu: GpuHost) -> dict:
    """GPU models, driver version and the CUDA version the driver supports (what a run record notes)."""
    out: dict = {"gpus": [], "driver_version": None, "cuda_driver_version": None,
                 "devices": [gpu.inside(d) for d in gpu.devices], "libraries": len(gpu.libs),
                 "cdi": bool(gpu.cdi)}
    try:
        text = (Path(gpu.root) / "proc/driver/nvidia/version").read_text()
        m = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+([0-9][0-9.]+)", text)
        if m:
            out["driver_version"] = m.group(1)
    except OSError:
        pass
    smi = next((b.host for b in gpu.bins if b.name == "nvidia-smi" and b.host), None)
    if smi is not None:
        try:
            q = subprocess.run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
            for line in q.stdout.splitlines():
                name, _, drv = line.rpartition(",")
                if name.strip():
                    out["gpus"].append(name.strip())
                    out["driver_version"] = out["driver_version"] or drv.strip()
            head = subprocess.run([smi], capture_output=True, text=True, timeout=30).stdout
            m = re.search(r"CUDA Version:\s*([0-9]+\.[0-9]+)", head)
            if m:
                out["cuda_driver_version"] = m.group(1)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if out["cuda_driver_version"] is None:
        out["cuda_driver_version"] = _cuda_driver_version(gpu)
    return out


def _cuda_driver_version(gpu: GpuHost) -> str | None:
    """``cuDriverGetVersion`` of the host's libcuda (no context is made)."""
    lib = next((f for f in gpu.libs if f.name == "libcuda.so.1"), None)
    files = {f.name: f for f in gpu.libs}
    while lib is not None and lib.link is not None:
        lib = files.get(lib.link)
    if lib is None or lib.host is None:
        return None
    import ctypes

    try:
        cuda = ctypes.CDLL(lib.host)
        v = ctypes.c_int()
        if cuda.cuDriverGetVersion(ctypes.byref(v)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return cuda_version_text(v.value)


def cuda_version_text(v: int) -> str:
    """CUDA's integer version (12040) as text (12.4)."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def version_tuple(text: str | None) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(".")) if text else ()
