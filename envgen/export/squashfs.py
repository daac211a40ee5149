"""Reproducible squashfs images with ``mksquashfs`` (squashfs-tools).

``mksquashfs SRC OUT -noappend -comp gzip -all-root -mkfs-time EPOCH -all-time
EPOCH -no-xattrs -processors 1`` with EPOCH the snapshot date (the one clock:
the OCI image's ``created`` says the same) and ``SOURCE_DATE_EPOCH`` unset
(combining both is a fatal error in 4.5).  Extra files (the SIF's
``/.singularity.d``) go in as mksquashfs *pseudo files*, so the read-only store
tree is never copied.  The bytes depend on the mksquashfs version: it is
recorded next to the image.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from .. import proc
from ..errors import ToolMissing

HINT = "apt-get install squashfs-tools"
# the flags that decide the bytes (with time_flags); QUIET only silences the tool
REPRO_FLAGS = ["-noappend", "-comp", "gzip", "-all-root", "-no-xattrs", "-processors", "1"]
QUIET = ["-no-progress", "-quiet"]


def time_flags(epoch: int) -> list[str]:
    """Every time in the image (the superblock's mkfs_time and each inode's) set to *epoch*."""
    return ["-mkfs-time", str(int(epoch)), "-all-time", str(int(epoch))]


def mksquashfs_path() -> str:
    try:
        return proc.which("mksquashfs", hint=HINT, why="it makes SIF and squashfs images")
    except ToolMissing:
        if os.path.exists("/usr/bin/mksquashfs"):  # PATH without /usr/bin
            return "/usr/bin/mksquashfs"
        raise


def mksquashfs_version() -> str:
    p = proc.run([mksquashfs_path(), "-version"], "mksquashfs -version", check=False, hint=HINT)
    first = (p.stdout or p.stderr).splitlines()
    return first[0].strip() if first else "unknown"


def path_of(fh: BinaryIO) -> Path:
    """The file system path of the open file *fh* (e.g. the temporary file of ``fsutil.atomic_output``)."""
    return Path(os.readlink(f"/proc/self/fd/{fh.fileno()}"))


def make_squashfs(src: Path, out: Path, epoch: int, extras: dict[str, tuple[bytes, int]] | None = None,
                  extra_dirs: dict[str, int] | None = None, mode_fixes: dict[str, int] | None = None) -> Path:
    """Squash the tree *src* into the file *out*, adding *extras* ({"/path": (bytes, mode)}) and *extra_dirs*.

    Every time in the image is *epoch*.  *mode_fixes* ({"/path": mode}) changes
    the mode of existing directories (e.g. /tmp).  *out* is written in place:
    callers publish it atomically (``write_env_sqsh``) or use it as scratch (the SIF).
    """
    out = Path(out)
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
        env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
        cmd = [mksquashfs_path(), str(src), str(out), *REPRO_FLAGS, *time_flags(epoch), *QUIET]
        if lines:
            cmd += ["-pf", str(pf)]
        proc.run(cmd, "mksquashfs", env=env, hint=HINT, lines=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
