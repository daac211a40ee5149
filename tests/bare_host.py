"""A bare host for tests: a Debian minbase root, entered as an unprivileged user with no network.

:func:`make_root` runs ``debootstrap --variant=minbase`` (no python3, bwrap,
zstd, xz or envgen in it).  :func:`run_in_root` runs a command in it the way a
reviewer's bare machine would: a new mount namespace and, unless asked, a new
network namespace (``unshare -n -m``), the root made ``/`` by ``pivot_root``
(not chroot: a chrooted process may not make user namespaces) with the host
unmounted from view, then uid and gid 1000.  Both need root.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = 155  # x86_64

MIRROR = "http://deb.debian.org/debian"


def make_root(root: Path, suite: str = "bookworm") -> Path:
    subprocess.run(["debootstrap", "--variant=minbase", suite, str(root), MIRROR], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return root


def _enter(root: str, cwd: str, uid: int, gid: int, network: bool):
    libc = ctypes.CDLL(None, use_errno=True)

    def ok(rc: int, what: str) -> None:
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def mount(src, dst, fstype, flags):
        ok(libc.mount(src, dst, fstype, ctypes.c_ulong(flags), None), f"mount {dst!r}")

    def child() -> None:
        ok(libc.unshare(CLONE_NEWNS | (0 if network else CLONE_NEWNET)), "unshare")
        mount(None, b"/", None, MS_REC | MS_PRIVATE)
        r = root.encode()
        mount(r, r, None, MS_BIND | MS_REC)
        mount(b"proc", r + b"/proc", b"proc", 0)
        mount(b"/dev", r + b"/dev", None, MS_BIND | MS_REC)
        os.makedirs(root + "/.old", exist_ok=True)
        os.chdir(root)
        ok(libc.syscall(SYS_PIVOT_ROOT, b".", b".old"), "pivot_root")
        os.chdir("/")
        ok(libc.umount2(b"/.old", MNT_DETACH), "umount /.old")
        os.rmdir("/.old")
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        os.chdir(cwd)

    return child


def run_in_root(root: Path, argv: list[str], *, cwd: str = "/", uid: int = 1000, gid: int = 1000,
                network: bool = False, env: dict[str, str] | None = None,
                timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run *argv* (an absolute path first: it is looked up inside *root*) as uid:gid in *root*."""
    environ = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": cwd, "LANG": "C.UTF-8", **(env or {})}
    return subprocess.run(argv, preexec_fn=_enter(str(root), cwd, uid, gid, network), env=environ,
                          capture_output=True, text=True, timeout=timeout)
