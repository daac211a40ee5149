"""A fake NVIDIA driver tree: the file names of a real driver release, laid out as a host has them.

The names are those the NVIDIA Linux x86_64 driver 550.54.14 installs (its
``.manifest`` in NVIDIA-Linux-x86_64-550.54.14.run, as unpacked into a
Debian-style multiarch libdir; the 32-bit compatibility libraries go to
``/usr/lib/i386-linux-gnu``), its device nodes as the kernel module and
nvidia-modprobe make them on a two-GPU machine, and ``/proc/driver/nvidia/version``
in that module's words.  Regular files stand in for the device nodes and the
libraries; ``nvidia-smi`` is a shell script printing what the real one prints.
"""

from __future__ import annotations

import os
from pathlib import Path

VERSION = "550.54.14"
LIBDIR = "usr/lib/x86_64-linux-gnu"

# (name, symlink target or None) in the 64-bit libdir: the compute and utility libraries
COMPUTE_UTILITY = [
    (f"libcuda.so.{VERSION}", None), ("libcuda.so.1", f"libcuda.so.{VERSION}"), ("libcuda.so", "libcuda.so.1"),
    (f"libcudadebugger.so.{VERSION}", None), ("libcudadebugger.so.1", f"libcudadebugger.so.{VERSION}"),
    (f"libnvidia-ml.so.{VERSION}", None), ("libnvidia-ml.so.1", f"libnvidia-ml.so.{VERSION}"),
    ("libnvidia-ml.so", "libnvidia-ml.so.1"),
    (f"libnvidia-ptxjitcompiler.so.{VERSION}", None),
    ("libnvidia-ptxjitcompiler.so.1", f"libnvidia-ptxjitcompiler.so.{VERSION}"),
    (f"libnvidia-nvvm.so.{VERSION}", None), ("libnvidia-nvvm.so.4", f"libnvidia-nvvm.so.{VERSION}"),
    (f"libnvidia-gpucomp.so.{VERSION}", None),
    (f"libnvidia-opencl.so.{VERSION}", None), ("libnvidia-opencl.so.1", f"libnvidia-opencl.so.{VERSION}"),
    (f"libnvidia-cfg.so.{VERSION}", None), ("libnvidia-cfg.so.1", f"libnvidia-cfg.so.{VERSION}"),
    (f"libnvidia-allocator.so.{VERSION}", None), ("libnvidia-allocator.so.1", f"libnvidia-allocator.so.{VERSION}"),
    (f"libnvidia-pkcs11.so.{VERSION}", None), (f"libnvidia-pkcs11-openssl3.so.{VERSION}", None),
]
# graphics, video and display libraries of the same release: not for --gpu (compute, utility)
GRAPHICS = [
    f"libnvidia-glcore.so.{VERSION}", f"libnvidia-eglcore.so.{VERSION}", f"libnvidia-glsi.so.{VERSION}",
    f"libGLX_nvidia.so.{VERSION}", f"libEGL_nvidia.so.{VERSION}", f"libGLESv2_nvidia.so.{VERSION}",
    f"libnvidia-encode.so.{VERSION}", f"libnvcuvid.so.{VERSION}", f"libnvidia-fbc.so.{VERSION}",
    f"libnvidia-rtcore.so.{VERSION}", f"libnvoptix.so.{VERSION}", f"libnvidia-tls.so.{VERSION}",
    f"libnvidia-glvkspirv.so.{VERSION}", f"libnvidia-opticalflow.so.{VERSION}",
]
BINARIES = ["nvidia-debugdump", "nvidia-persistenced", "nvidia-cuda-mps-control", "nvidia-cuda-mps-server"]
OTHER_BINARIES = ["nvidia-settings", "nvidia-xconfig", "nvidia-installer", "nvidia-bug-report.sh",
                  "nvidia-modprobe"]
DEVICES = ["nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"]
CAPS = ["nvidia-cap1", "nvidia-cap2"]
PROC_VERSION = (f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {VERSION}  Thu Feb 22 01:44:30 UTC 2024\n"
                "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14) \n")
SMI = f"""#!/bin/sh
case "$1" in
  --query-gpu=*) printf 'NVIDIA H200, {VERSION}\\nNVIDIA H200, {VERSION}\\n' ;;
  *) echo "| NVIDIA-SMI {VERSION}              Driver Version: {VERSION}      CUDA Version: 12.4     |" ;;
esac
"""


def write_driver_tree(root: Path, *, cdi: bool = False) -> Path:
    """Lay out the fake driver under *root* (its /dev, libdirs, /usr/bin, /proc/driver); return *root*."""
    lib = root / LIBDIR
    lib.mkdir(parents=True)
    for name, target in COMPUTE_UTILITY:
        if target is None:
            (lib / name).write_bytes(b"\x7fELF fake " + name.encode())
        else:
            os.symlink(target, lib / name)
    for name in GRAPHICS:
        (lib / name).write_bytes(b"\x7fELF fake")
    os.symlink(f"libGLX_nvidia.so.{VERSION}", lib / "libGLX_nvidia.so.0")
    lib32 = root / "usr/lib/i386-linux-gnu"
    lib32.mkdir(parents=True)
    (lib32 / f"libcuda.so.{VERSION}").write_bytes(b"\x7fELF fake 32-bit")
    os.symlink(f"libcuda.so.{VERSION}", lib32 / "libcuda.so.1")
    bindir = root / "usr/bin"
    bindir.mkdir(parents=True)
    for name in BINARIES + OTHER_BINARIES:
        (bindir / name).write_text("#!/bin/sh\nexit 0\n")
        (bindir / name).chmod(0o755)
    (bindir / "nvidia-smi").write_text(SMI)
    (bindir / "nvidia-smi").chmod(0o755)
    dev = root / "dev"
    (dev / "nvidia-caps").mkdir(parents=True)
    for name in DEVICES:
        (dev / name).write_text("")
    for name in CAPS:
        (dev / "nvidia-caps" / name).write_text("")
    (dev / "null").write_text("")
    proc = root / "proc/driver/nvidia"
    proc.mkdir(parents=True)
    (proc / "version").write_text(PROC_VERSION)
    if cdi:
        (root / "etc/cdi").mkdir(parents=True)
        # as `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml` writes it (abridged)
        (root / "etc/cdi/nvidia.yaml").write_text(
            "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: all\n  containerEdits:\n"
            "    deviceNodes:\n    - path: /dev/nvidia0\n")
    return root
