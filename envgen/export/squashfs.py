"""Reproducible squashfs images with ``mksquashfs`` (squashfs-tools).

``mksquashfs SRC OUT -noappend -comp gzip -all-root -mkfs-time 0 -all-time 0
-no-xattrs -processors 1`` with ``SOURCE_DATE_EPOCH`` unset (combining both is
a fatal error in 4.5).  Extra files (the SIF's ``/.singularity.d``) go in as
mksquashfs *pseudo files*, so the read-only store tree is never copied.  The
bytes depend on the mksquashfs version: it is recorded next to the image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import EnvgenError

REPRO_FLAGS = ["-noappend", "-comp", "gzip", "-all-root", "-mkfs-time", "0", "-all-time", "0",
               "-no-xattrs", "-processors", "1", "-no-progress", "-quiet"]


def mksquashfs_path() -> str:
    exe = shutil.which("mksquashfs") or ("/usr/bin/mksquashfs" if os.path.exists("/usr/bin/mksquashfs") else None)
    if exe is None:
        raise EnvgenError("mksquashfs is not installed", hint="apt-get install squashfs-tools")
    return exe


def mksquashfs_version() -> str:
    p = subprocess.run([mksquashfs_path(), "-version"], capture_output=True, text=True)
    first = (p.stdout or p.stderr).splitlines()
    return first[0].strip() if first else "unknown"


def make_squashfs(src: Path, out: Path, extras: dict[str, tuple[bytes, int]] | None = None,
                  extra_dirs: dict[str, int] | None = None, mode_fixes: dict[str, int] | None = None) -> Path:
    """Squash the tree *src* into *out*, adding *extras* ({"/path": (bytes, mode)}) and *extra_dirs*.

    *mode_fixes* ({"/path": mode}) changes the mode of existing directories (e.g. /tmp).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".sqsh-", dir=out.parent))
    try:
        lines = []
        for d, mode in sorted((extra_dirs or {}).items()):
            lines.append(f"{d} d {mode:o} 0 0")
        for i, (path, (data, mode)) in enumerate(sorted((extras or {}).items())):
            f = work / f"x{i}"
            f.write_bytes(data)
            lines.append(f"{path} f {mode:o} 0 0 cat {f}")
        for path, mode in sorted((mode_fixes or {}).items()):
            lines.append(f"{path} m {mode:o} 0 0")
        pf = work / "pseudo"
        pf.write_text("".join(line + "\n" for line in lines))
        tmp = work / "image.sqsh"
        env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
        cmd = [mksquashfs_path(), str(src), str(tmp), *REPRO_FLAGS]
        if lines:
            cmd += ["-pf", str(pf)]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            msg = (p.stderr or p.stdout).strip().splitlines()
            raise EnvgenError(f"mksquashfs failed: {msg[-1] if msg else p.returncode}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
