"""The environment tree: its digest, and the normalisation every builder applies.

The **tree digest** is the sha256 of a canonical listing of the tree: one line
per entry, sorted by path (bytes), giving the path, the type, the mode and
either the sha256 of the content (files) or the link target (symlinks).  The
mode is reduced to what every store can hold, as Nix does: 0755 for
directories and executable files, 0644 for other files; so the same tree has
the same digest whether it sits writable in a staging directory, read-only in
envgen's store or in /nix/store.  Owners and mtimes are not part of it:
builders clamp every mtime to the snapshot date, and exports write uid/gid 0.
"""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..fsutil import file_sha256

CHUNK = 1 << 20


def walk(root: Path) -> list[tuple[str, os.stat_result]]:
    """Every entry under *root* (not root itself), sorted by path bytes, not following links."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            out.append((os.path.relpath(full, root), os.lstat(full)))
    out.sort(key=lambda e: e[0].encode("utf-8", "surrogateescape"))
    return out


def listing(root: Path, jobs: int = 4) -> list[str]:
    entries = walk(Path(root))
    files = [os.path.join(root, p) for p, st in entries if stat.S_ISREG(st.st_mode)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        shas = dict(zip(files, pool.map(file_sha256, files), strict=True))
    lines = []
    for rel, st in entries:
        mode = 0o755 if stat.S_ISDIR(st.st_mode) or st.st_mode & 0o111 else 0o644
        full = os.path.join(root, rel)
        if stat.S_ISDIR(st.st_mode):
            lines.append(f"d {mode:04o} {rel}")
        elif stat.S_ISLNK(st.st_mode):
            lines.append(f"l 0777 {rel} -> {os.readlink(full)}")
        elif stat.S_ISREG(st.st_mode):
            lines.append(f"f {mode:04o} {rel} {shas[full]}")
        else:
            lines.append(f"? {mode:04o} {rel}")
    return lines


def tree_digest(root: Path) -> tuple[str, list[str]]:
    lines = listing(root)
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest(), lines


def clamp_mtimes(root: Path, epoch: int) -> None:
    """Set every mtime (links included) to *epoch*, children before parents."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def make_readonly(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                os.chmod(p, stat.S_IMODE(st.st_mode) & ~0o222)
    for dirpath, dirnames, _ in os.walk(root, topdown=False):
        for name in dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, stat.S_IMODE(os.lstat(p).st_mode) & ~0o222)
