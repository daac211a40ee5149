"""bubblewrap: run a command with an environment tree as ``/``.

One function builds the bwrap argv for every use: the builder (tree
writable, network cut, store objects bound read-only) and ``envgen run``
(tree read-only, only the declared binds, network cut unless asked for).
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from .errors import EnvgenError
from .layout import BASE_ENV
from .run.launch import bwrap_argv, netns_marker, parse_bind, which
from .values import Value


class Bind(Value):
    def __init__(self, src: Path, dst: str, writable: bool = False):
        self.src = src
        self.dst = dst
        self.writable = writable

    @classmethod
    def parse(cls, text: str) -> Bind:
        """``SRC:DST[:ro|:rw]`` (read-write unless ``:ro``): :func:`envgen.run.launch.parse_bind`."""
        src, dst, writable = parse_bind(text)
        return cls(Path(src), dst, writable)

    def spec(self) -> str:
        return f"{self.src}:{self.dst}:{'rw' if self.writable else 'ro'}"


def bwrap_path() -> str:
    path = which("bwrap")
    if not path:
        raise EnvgenError(
            "bubblewrap (bwrap) is not installed; envgen needs it to build and run environments unprivileged",
            hint="apt-get install bubblewrap  (or dnf install bubblewrap)",
        )
    return path


@functools.cache
def netns_available() -> bool:
    """Whether bwrap can make a network namespace here (unprivileged user namespaces allowed).

    The answer is a property of the running kernel and its settings, so it is
    cached per boot (keyed by /proc/sys/kernel/random/boot_id).
    """
    marker = Path(m) if (m := netns_marker()) is not None else None
    if marker is not None and marker.is_file():
        return marker.read_text() == "yes"
    ok = _probe_netns()
    if marker is not None:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("yes" if ok else "no")
        except OSError:
            pass
    return ok


def _probe_netns() -> bool:
    try:
        proc = subprocess.run([bwrap_path(), "--unshare-net", "--ro-bind", "/", "/", "true"],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


class Sandbox(Value):
    def __init__(self, root: Path, writable_root: bool = False, network: bool = False, binds: list[Bind] | None = None,
                 env: dict[str, str] | None = None, cwd: str = "/", extra: list[str] | None = None):
        self.root = root
        self.writable_root = writable_root
        self.network = network
        self.binds: list[Bind] = binds if binds is not None else []
        self.env: dict[str, str] = env if env is not None else {}
        self.cwd = cwd
        self.extra: list[str] = extra if extra is not None else []

    def argv(self, command: list[str]) -> list[str]:
        if not self.network and not netns_available():
            raise EnvgenError("cannot create a network namespace here, so the network cannot be cut",
                              hint="allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)")
        return bwrap_argv(bwrap_path(), str(self.root), list(command), env={**BASE_ENV, "HOME": "/tmp", **self.env},
                          writable_root=self.writable_root, network=self.network,
                          binds=[(str(b.src), b.dst, b.writable) for b in self.binds], cwd=self.cwd, extra=self.extra)

    def run(self, command: list[str], **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(command), **kw)
