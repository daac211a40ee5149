"""bubblewrap: run a command with an environment tree as ``/``.

One function builds the bwrap argv for every use: the builder (tree
writable, network cut, store objects bound read-only) and ``envgen run``
(tree read-only, only the declared binds, network cut unless asked for).
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from .errors import EnvgenError
from .layout import BASE_ENV
from .values import Value


class Bind(Value):
    def __init__(self, src: Path, dst: str, writable: bool = False):
        self.src = src
        self.dst = dst
        self.writable = writable

    @classmethod
    def parse(cls, text: str) -> Bind:
        """``SRC:DST[:ro|:rw]`` (read-write unless ``:ro``)."""
        parts = text.split(":")
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            src, dst, mode = parts
        elif len(parts) == 2:
            src, dst, mode = parts[0], parts[1], "rw"
        else:
            raise EnvgenError(f"--bind {text!r}: expected SRC:DST or SRC:DST:ro")
        if not dst.startswith("/"):
            raise EnvgenError(f"--bind {text!r}: the destination must be an absolute path inside the env")
        p = Path(src).expanduser()
        if not p.exists():
            raise EnvgenError(f"--bind {text!r}: the source {src} does not exist")
        return cls(p.resolve(), os.path.normpath(dst), mode == "rw")

    def spec(self) -> str:
        return f"{self.src}:{self.dst}:{'rw' if self.writable else 'ro'}"


def _which(name: str) -> str | None:
    """shutil.which for a plain name, without importing shutil (and bz2, lzma) on every run's start-up."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        p = os.path.join(d or os.curdir, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def bwrap_path() -> str:
    path = _which("bwrap")
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
    from .paths import probes_dir

    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    marker = probes_dir() / f"netns-{os.getuid()}-{boot}" if boot else None
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
        args = [bwrap_path(), "--die-with-parent", "--unshare-all"]
        if self.network:
            args.append("--share-net")
        elif not netns_available():
            raise EnvgenError("cannot create a network namespace here, so the network cannot be cut",
                              hint="allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)")
        if self.writable_root:
            args += ["--bind", str(self.root), "/"]
        else:
            # A tmpfs root holding read-only binds of the tree's top-level entries: bind
            # destinations that the tree lacks can then be created, and `--remount-ro /`
            # below makes the whole of / read-only again.
            args += ["--tmpfs", "/"]
            for entry in sorted(os.listdir(self.root)):
                full = self.root / entry
                if entry in ("proc", "dev", "tmp"):
                    continue
                if full.is_symlink():
                    args += ["--symlink", os.readlink(full), f"/{entry}"]
                else:
                    args += ["--ro-bind", str(full), f"/{entry}"]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        if self.network:
            for f in ("/etc/resolv.conf", "/etc/hosts"):
                if os.path.exists(f) and (self.root / f.lstrip("/")).exists():
                    args += ["--ro-bind", f, f]
        for b in self.binds:
            args += ["--bind" if b.writable else "--ro-bind", str(b.src), b.dst]
        args += self.extra
        if not self.writable_root:
            args += ["--remount-ro", "/"]
        args += ["--clearenv"]
        base = {**BASE_ENV, "HOME": "/tmp"}
        for k, v in {**base, **self.env}.items():
            args += ["--setenv", k, v]
        args += ["--chdir", self.cwd, "--"]
        return args + list(command)

    def run(self, command: list[str], **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(command), **kw)
