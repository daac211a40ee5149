"""Deterministic tar packing of local source trees.

The same file set and contents give the same bytes on any machine:

* entries sorted by path, parent directories before their contents;
* every mtime is the lock's snapshot date; uid/gid 0, empty user and group names;
* modes normalised: directories 0755, files 0755 if any execute bit is set, else 0644;
* POSIX pax format, but pax records appear only for long or non-ASCII names
  (which depend on the name alone);
* only directories that hold a packed file are recorded (git has no empty dirs).

Which files: inside a git work tree, ``git ls-files --cached --others
--exclude-standard`` (tracked plus untracked-but-not-ignored); elsewhere the
``.gitignore`` files of the tree are applied with :mod:`pathspec`.  Both skip
``.git/``, ``__pycache__/`` and ``*.pyc``.  For a clean tree whose ignore rules
live inside it the two give the same set, so a restored copy packs identically.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import EnvgenError
from ..tarfmt import entry

ALWAYS_SKIP_DIRS = {".git", "__pycache__"}
ALWAYS_SKIP_SUFFIXES = (".pyc",)


def _skipped(rel: str) -> bool:
    parts = rel.split("/")
    if any(p in ALWAYS_SKIP_DIRS for p in parts):
        return True
    return rel.endswith(ALWAYS_SKIP_SUFFIXES)


def _git_files(root: Path, probe: bool = False) -> list[str] | None:
    """The files git would see under *root*; with *probe*, None when *root* is not in a git work tree."""
    try:
        # safe.directory: the same file list whoever runs it (git refuses a checkout owned by another user)
        r = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"],
                           capture_output=True, timeout=120)
    except FileNotFoundError:
        if probe:
            return None
        raise EnvgenError("git is not installed") from None
    if r.returncode != 0:
        if probe:
            return None
        raise EnvgenError(f"{root}: git ls-files failed: {r.stderr.decode(errors='replace').strip()}")
    out = []
    for raw in r.stdout.split(b"\0"):
        if not raw:
            continue
        rel = raw.decode("utf-8", "surrogateescape")
        p = root / rel
        if os.path.lexists(p):  # --cached lists files deleted from the work tree
            out.append(rel)
    return out


def _walk_files(root: Path, dirs: list[str] | None = None) -> list[str]:
    """Files under *root* not ignored by the .gitignore files inside it (git's rules, via pathspec).

    *dirs*, if given, receives every directory the walk looked into ("" for *root*).
    """
    import pathspec

    out: list[str] = []
    # stack of (base dir relative to root, spec)
    def ignored(rel: str, is_dir: bool, specs: list) -> bool:
        verdict = False
        for base, spec in specs:
            if base and not rel.startswith(base + "/"):
                continue
            sub = rel[len(base) + 1:] if base else rel
            if is_dir:
                sub += "/"
            res = spec.check_file(sub)
            if res.include is not None:
                verdict = bool(res.include)
        return verdict

    def walk(d: Path, rel_dir: str, specs: list) -> None:
        if dirs is not None:
            dirs.append(rel_dir)
        gi = d / ".gitignore"
        if gi.is_file():
            lines = gi.read_text(errors="surrogateescape").splitlines()
            specs = specs + [(rel_dir, pathspec.GitIgnoreSpec.from_lines(lines))]
        for de in sorted(os.scandir(d), key=lambda e: e.name):
            rel = f"{rel_dir}/{de.name}" if rel_dir else de.name
            if de.is_dir(follow_symlinks=False):
                if de.name in ALWAYS_SKIP_DIRS or ignored(rel, True, specs):
                    continue
                walk(Path(de.path), rel, specs)
            else:
                if ignored(rel, False, specs):
                    continue
                out.append(rel)

    walk(root, "", [])
    return out


def list_files(root: str | os.PathLike, use_git: bool | None = None) -> list[str]:
    """The sorted POSIX relative paths of the files to pack from *root*."""
    root = Path(root)
    if not root.is_dir():
        raise EnvgenError(f"{root}: local project directory not found")
    files: list[str] | None = None
    if use_git is None:
        files = _git_files(root, probe=True)  # one git call answers both questions
    elif use_git:
        files = _git_files(root)  # never None without probe: it raises instead
    if files is None:
        files = _walk_files(root)
    return sorted({f for f in files if not _skipped(f)})


def watched_listing(root: str | os.PathLike) -> tuple[list[str], list[str]] | None:
    """:func:`list_files` of *root*, and the paths whose ``lstat``, unchanged, keeps that answer.

    For a cache of conclusions drawn from the listing (``envgen run``'s start-up
    plan) that is checked with ``lstat`` calls alone.  The answer depends on:

    * the entries of every directory the listing looks into (a directory's
      mtime and ctime change when an entry is added, removed or renamed);
      ignored directories are not looked into, so their churn does not count;
    * the ignore rules: every ``.gitignore`` on the way (present or absent),
      and in a git work tree the index, ``info/exclude``, the excludes file and
      the config files that could name another one;
    * whether *root* is in a git work tree at all: the ``.git`` of each
      directory above it.

    The listed files' own contents are not part of it (callers stat the files
    too).  None when git answers the listing but not the questions about it.
    Absolute paths, sorted.
    """
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise EnvgenError(f"{root}: local project directory not found")
    watch: set[Path] = set()
    files = _git_files(root, probe=True)
    if files is None:  # not in a work tree: the walk, and every .git above that could make it one
        seen: list[str] = []
        files = _walk_files(root, seen)
        dirs = [root / d if d else root for d in seen]
        watch.update(a / ".git" for a in (root, *root.parents))
    else:
        git = _git_state(root)
        if git is None:
            return None
        top, state = git
        dirs = []
        for dirpath, dirnames, _ in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            prefix = "" if rel == "." else rel + "/"
            dirnames[:] = sorted(d for d in dirnames
                                 if d not in ALWAYS_SKIP_DIRS and f"{prefix}{d}/" not in state["ignored"])
            dirs.append(Path(dirpath))
        real = Path(os.path.realpath(root))  # git names the top with symbolic links resolved
        between = [real] + [a for a in real.parents if a == top or top in a.parents]
        watch.update(a / ".gitignore" for a in between)
        # a repository made below the top would change the answer; the top's own .git is
        # covered by the index and config (its mtime moves with every git command)
        watch.update(a / ".git" for a in between if a != top)
        watch.update(Path(p) for p in state["files"])
    watch.update(dirs)
    watch.update(d / ".gitignore" for d in dirs)
    return sorted({f for f in files if not _skipped(f)}), sorted(str(p) for p in watch)


def _git_state(root: Path) -> tuple[Path, dict] | None:
    """The work tree's top, the ignored directories under *root*, and the git files that decide the listing."""
    def git(*args: str, stdin: bytes = b"", ok: tuple[int, ...] = (0,)) -> str | None:
        try:
            r = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(root), *args], input=stdin,
                               capture_output=True, timeout=120)
        except OSError:
            return None
        return r.stdout.decode("utf-8", "surrogateescape") if r.returncode in ok else None

    paths = git("rev-parse", "--path-format=absolute", "--show-toplevel", "--git-dir", "--git-common-dir",
                "--git-path", "index", "--git-path", "info/exclude")
    # Directories ls-files shows whole ("dir/") are ignored ones, or ones whose files all are: only
    # those that check-ignore confirms (a rule matches the directory) hide whatever appears in them.
    others = git("ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory")
    if paths is None or others is None or len(paths.splitlines()) != 5:
        return None
    candidates = [p for p in others.split("\0") if p.endswith("/")]
    ignored = git("check-ignore", "-z", "--stdin", stdin="\0".join(candidates).encode(), ok=(0, 1)) \
        if candidates else ""
    if ignored is None:
        return None
    top, gitdir, common, index, exclude = paths.splitlines()
    excludes = (git("config", "--get", "--path", "core.excludesFile", ok=(0, 1)) or "").strip()
    home = os.path.expanduser("~")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files = [index, exclude, os.path.join(common, "config"), os.path.join(gitdir, "config.worktree"),
             os.path.join(home, ".gitconfig"), os.path.join(xdg, "git", "config"), os.path.join(xdg, "git", "ignore"),
             "/etc/gitconfig"]
    if excludes:
        files.append(os.path.join(root, excludes))
    return Path(top), {"files": files, "ignored": {p for p in ignored.split("\0") if p}}


def _norm_mode(st_mode: int) -> int:
    return 0o755 if st_mode & 0o111 else 0o644


def _dirs_of(files: Iterable[str]) -> set[str]:
    dirs = set()
    for f in files:
        parent = PurePosixPath(f).parent
        while str(parent) not in ("", "."):
            dirs.add(str(parent))
            parent = parent.parent
    return dirs


def pack_files(entries: list[tuple[str, Path]], out: BinaryIO, mtime: int, prefix: str = "") -> None:
    """Write a deterministic tar of (archive name, source file) pairs to *out*."""
    names = [prefix + n for n, _ in entries]
    if len(set(names)) != len(names):
        raise EnvgenError("duplicate names in a source pack")
    items: list[tuple[str, Path | None]] = [(d + "/", None) for d in _dirs_of(names)]
    items += [(prefix + n, p) for n, p in entries]
    items.sort(key=lambda it: it[0].rstrip("/"))
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:
        for name, src in items:
            if src is None:
                tf.addfile(entry(name.rstrip("/"), mtime=int(mtime), type=tarfile.DIRTYPE, mode=0o755))
                continue
            st = os.lstat(src)
            if stat.S_ISLNK(st.st_mode):
                raise EnvgenError(f"{src}: symbolic links are not supported in local projects",
                                  hint="replace the link with a copy of the file")
            if not stat.S_ISREG(st.st_mode):
                raise EnvgenError(f"{src}: not a regular file")
            with open(src, "rb") as fh:
                tf.addfile(entry(name, mtime=int(mtime), size=st.st_size, mode=_norm_mode(st.st_mode)), fh)


def pack_tree(root: str | os.PathLike, out: BinaryIO, mtime: int, use_git: bool | None = None) -> list[str]:
    root = Path(root)
    files = list_files(root, use_git)
    pack_files([(f, root / f) for f in files], out, mtime)
    return files


def pack_tree_bytes(root: str | os.PathLike, mtime: int, use_git: bool | None = None) -> bytes:
    buf = io.BytesIO()
    pack_tree(root, buf, mtime, use_git)
    return buf.getvalue()


def check_member(name: str) -> str | None:
    """Why *name* is unsafe to extract, or None."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        return "absolute or malformed path"
    parts = name.rstrip("/").split("/")
    if any(p in ("..", "") for p in parts):
        return "path with '..' or an empty component"
    if parts[0] == ".":
        return "path starting with '.'"
    return None


def safe_members(tf: tarfile.TarFile, what: str) -> list[tarfile.TarInfo]:
    """Validate every member of a source pack: regular files and directories only, no escapes."""
    seen = set()
    members = []
    for m in tf:
        why = check_member(m.name)
        if why:
            raise EnvgenError(f"{what}: refused member {m.name!r}: {why}")
        if not (m.isreg() or m.isdir()):
            raise EnvgenError(f"{what}: refused member {m.name!r}: only regular files and directories are allowed")
        key = m.name.rstrip("/")
        if key in seen:
            raise EnvgenError(f"{what}: refused: duplicate member {m.name!r}")
        seen.add(key)
        members.append(m)
    return members


def unpack(tar_path: str | os.PathLike, dest: str | os.PathLike, what: str) -> int:
    """Extract a source pack (validated first) into *dest*; returns the number of files."""
    dest = Path(dest)
    with tarfile.open(tar_path, "r:") as tf:
        members = safe_members(tf, what)
        n = 0
        for m in members:
            target = dest / m.name.rstrip("/")
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                os.chmod(target, 0o755)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(m)
            assert src is not None  # safe_members lets through only regular files and directories
            with open(target, "wb") as fh:
                while True:
                    buf = src.read(1 << 20)
                    if not buf:
                        break
                    fh.write(buf)
            os.chmod(target, _norm_mode(m.mode))
            n += 1
    return n
