"""The environment tree: canonical modes, the tree digest, and comparing two trees.

**Canonical modes.**  A builder never lets the process umask, the build user or
a tool's whims decide a mode.  :func:`canonicalize` sets every entry from its
type and the package's executable bit alone: directories 0755, regular files
0755 when the owner-execute bit is set (the bit the package asked for survives
any umask, and it is the bit Nix keeps) and 0644 otherwise; no setuid, setgid
or sticky bit anywhere (``/tmp`` included: images get a 1777 ``/tmp`` from the
exporters).  :func:`make_readonly` then removes every write bit, so a published
tree holds exactly the modes the Nix store holds: 0555 for directories and
executables, 0444 for other files, 0777 for symbolic links.

The **tree digest** is the sha256 of a canonical listing of the published
(read-only) tree: one line per entry (the root itself excluded), sorted by the
path's bytes::

    d MODE PATH
    f MODE PATH SHA256
    l 0777 PATH -> TARGET

MODE is the entry's exact permission bits (``stat.S_IMODE``, four octal
digits), not normalised: any mode difference changes the digest.  Owners and
mtimes are not part of it (builders clamp every mtime to the snapshot date;
exports write uid/gid 0).  Hard links are not recorded (the Nix store may add
or drop them); each path lists its own content.
"""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError
from ..fsutil import file_sha256

CHUNK = 1 << 20
DIR_MODE = 0o755
EXEC_MODE = 0o755
FILE_MODE = 0o644


def _key(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def walk(root: Path) -> list[tuple[str, os.stat_result]]:
    """Every entry under *root* (not root itself), sorted by path bytes, not following links."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            out.append((os.path.relpath(full, root), os.lstat(full)))
    out.sort(key=lambda e: _key(e[0]))
    return out


def canonical_mode(st: os.stat_result) -> int:
    """The mode a writable tree entry gets: from its type and its owner-execute bit only."""
    if stat.S_ISDIR(st.st_mode):
        return DIR_MODE
    return EXEC_MODE if st.st_mode & stat.S_IXUSR else FILE_MODE


def canonicalize(root: Path) -> int:
    """Give every entry under *root* (and *root*) its canonical mode; return how many were changed.

    Symbolic links are left alone (Linux has no link modes).  Directories are
    made 0755 before their contents are visited, so a 0500 or 0000 directory
    left by a umask or a package cannot hide its entries.
    """
    root = Path(root)
    changed = 0
    os.chmod(root, DIR_MODE)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = canonical_mode(st)
            if stat.S_IMODE(st.st_mode) != mode:
                os.chmod(full, mode)
                changed += 1
    return changed


def _mode_of(st: os.stat_result) -> int:
    return 0o777 if stat.S_ISLNK(st.st_mode) else stat.S_IMODE(st.st_mode)


def listing(root: Path, jobs: int = 4, entries: list[tuple[str, os.stat_result]] | None = None) -> list[str]:
    """The canonical listing of the tree at *root* (see the module docstring), exact modes; *entries*:
    :func:`walk` of *root*, when the caller has it already."""
    entries = walk(Path(root)) if entries is None else entries
    files = [os.path.join(root, p) for p, st in entries if stat.S_ISREG(st.st_mode)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        shas = dict(zip(files, pool.map(file_sha256, files), strict=True))
    lines = []
    for rel, st in entries:
        mode = _mode_of(st)
        full = os.path.join(root, rel)
        if stat.S_ISDIR(st.st_mode):
            lines.append(f"d {mode:04o} {rel}")
        elif stat.S_ISLNK(st.st_mode):
            lines.append(f"l {mode:04o} {rel} -> {os.readlink(full)}")
        elif stat.S_ISREG(st.st_mode):
            lines.append(f"f {mode:04o} {rel} {shas[full]}")
        else:
            lines.append(f"? {mode:04o} {rel}")
    return lines


def digest_of(lines: list[str]) -> str:
    """The tree digest of a listing."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()


def tree_digest(root: Path) -> tuple[str, list[str]]:
    lines = listing(root)
    return digest_of(lines), lines


def clamp_mtimes(root: Path, epoch: int) -> None:
    """Set every mtime (links included) to *epoch*, children before parents."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def final_mode(st: os.stat_result) -> int:
    """The mode an entry has in a published tree: its canonical mode without write bits (0555 or 0444)."""
    return canonical_mode(st) & ~0o222


def settle(root: Path, epoch: int, known: dict[tuple[int, int], str] | None = None,
           root_mode: int = DIR_MODE, jobs: int = 4) -> tuple[list[str], int]:
    """Publish the tree at *root* in one pass (what :func:`canonicalize`, :func:`clamp_mtimes` and
    :func:`make_readonly` do together) and return its listing and the size of its files.

    Every entry gets its final mode (:func:`final_mode`) and the mtime *epoch*,
    directories after their contents; *root* itself gets *root_mode*.  Files
    whose inode is in *known* ({(st_dev, st_ino): sha256}) are hard links into
    install units (:mod:`envgen.builders.units`), shared with other trees: they
    already hold their final mode and time and are never changed (a difference
    is an error, never repaired through a shared inode), and their sha256 is
    taken from *known* instead of being read again.
    """
    root = Path(root)
    known = known or {}
    base = len(str(root)) + 1
    entries: list[tuple[str, str, int, str, str | None]] = []  # (rel, kind, mode, full path, known sha256)
    ns = epoch * 1_000_000_000
    size = 0

    def fix(full: str, st: os.stat_result) -> int:
        if stat.S_ISLNK(st.st_mode):
            if st.st_mtime_ns != ns:
                os.utime(full, ns=(ns, ns), follow_symlinks=False)
            return 0o777
        mode = final_mode(st)
        if (st.st_dev, st.st_ino) in known and stat.S_ISREG(st.st_mode):
            if stat.S_IMODE(st.st_mode) != mode or st.st_mtime_ns != ns:
                raise BuildError(f"{full}: a file shared with an install unit has mode "
                                 f"{stat.S_IMODE(st.st_mode):04o} and mtime {st.st_mtime_ns // 10**9}, "
                                 f"not {mode:04o} and {epoch}",
                                 hint="the store's units were changed outside envgen (a tree's files are its "
                                      "units' files: a chmod or touch on one changes both); `envgen store verify "
                                      "--repair` removes the damaged ones (trees keep their files), then build again")
            return mode
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(full, mode)
        if st.st_mtime_ns != ns:
            os.utime(full, ns=(ns, ns))
        return mode

    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for i, name in enumerate(dirnames + filenames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            mode = fix(full, st)
            size += st.st_size if i >= len(dirnames) else 0  # what os.walk lists as files (as `bytes` always was)
            if stat.S_ISREG(st.st_mode):
                entries.append((full[base:], "f", mode, full, known.get((st.st_dev, st.st_ino))))
            else:
                kind = "l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else "?"
                entries.append((full[base:], kind, mode, full, None))
    os.chmod(root, root_mode)
    os.utime(root, ns=(ns, ns))
    entries.sort(key=lambda e: _key(e[0]))
    todo = [e[3] for e in entries if e[1] == "f" and e[4] is None]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        shas = dict(zip(todo, pool.map(file_sha256, todo), strict=True))
    lines = []
    for rel, kind, mode, full, sha in entries:
        if kind == "d":
            lines.append(f"d {mode:04o} {rel}")
        elif kind == "l":
            lines.append(f"l {mode:04o} {rel} -> {os.readlink(full)}")
        elif kind == "f":
            lines.append(f"f {mode:04o} {rel} {sha or shas[full]}")
        else:
            lines.append(f"? {mode:04o} {rel}")
    return lines, size


def make_readonly(root: Path) -> None:
    """Remove every write bit under *root* (files first, then directories bottom-up); mtimes are kept."""
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


# --------------------------------------------------------------------------- comparing two listings


@dataclass(frozen=True)
class Entry:
    """One parsed listing line."""

    path: str
    kind: str  # d, f, l, ?
    mode: str
    sha256: str = ""
    target: str = ""

    def describe(self) -> str:
        what = {"d": "directory", "f": "file", "l": "symlink", "?": "special file"}[self.kind]
        extra = f" sha256 {self.sha256[:16]}…" if self.kind == "f" else f" -> {self.target}" if self.kind == "l" else ""
        return f"{what} {self.mode}{extra}"


def parse_line(line: str) -> Entry:
    kind, mode, rest = line.split(" ", 2)
    if kind == "f":
        path, sha = rest.rsplit(" ", 1)
        return Entry(path, kind, mode, sha256=sha)
    if kind == "l":
        path, target = rest.split(" -> ", 1)
        return Entry(path, kind, mode, target=target)
    return Entry(rest, kind, mode)


def compare_listings(a: list[str], b: list[str], sizes: tuple[dict, dict] | None = None) -> list[dict]:
    """Every path whose entry differs between listings *a* and *b*, with how it differs.

    Each difference is ``{"path", "differences": [...], "a", "b"}``; a
    difference is one of ``missing in a``/``missing in b``, ``type``, ``mode``,
    ``content`` (and ``size`` when *sizes* ({path: size} per side) say so) or
    ``link target``.  Sorted by path bytes.
    """
    ea = {e.path: e for e in map(parse_line, a)}
    eb = {e.path: e for e in map(parse_line, b)}
    out = []
    for path in sorted(set(ea) | set(eb), key=_key):
        x, y = ea.get(path), eb.get(path)
        if x == y:
            continue
        diffs: list[str] = []
        if x is None:
            diffs.append("missing in a")
        elif y is None:
            diffs.append("missing in b")
        else:
            if x.kind != y.kind:
                diffs.append("type")
            if x.mode != y.mode:
                diffs.append("mode")
            if x.kind == y.kind == "f" and x.sha256 != y.sha256:
                if sizes is not None and sizes[0].get(path) != sizes[1].get(path):
                    diffs.append("size")
                diffs.append("content")
            if x.kind == y.kind == "l" and x.target != y.target:
                diffs.append("link target")
        item: dict = {"path": path, "differences": diffs, "a": x.describe() if x else None,
                      "b": y.describe() if y else None}
        if sizes is not None and "size" in diffs:
            item["size"] = [sizes[0].get(path), sizes[1].get(path)]
        out.append(item)
    return out


def sizes_of(root: Path) -> dict[str, int]:
    """{path: size} of the regular files under *root*."""
    return {rel: st.st_size for rel, st in walk(Path(root)) if stat.S_ISREG(st.st_mode)}


def describe_difference(d: dict) -> str:
    """One line: the path, what differs, and both sides."""
    return f"{d['path']}: {', '.join(d['differences'])} ({d['a'] or 'absent'} / {d['b'] or 'absent'})"
