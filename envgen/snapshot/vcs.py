"""Git requirements pinned to a commit: fetched once, packed by content, found by sha256.

A spec may name ``pkg @ git+https://host/repo@<40-hex commit>[#subdirectory=sub]``.
Like a Nix or Guix fixed-output source, what is pinned is the content:

* at lock time (network) the commit, and only it, is fetched (``git init`` +
  ``git fetch --depth 1 URL COMMIT``; a server that refuses to serve a commit
  by id gets a full fetch instead); ``HEAD`` must then be that commit;
* the checkout (or its ``subdirectory``) is packed with the packer of local
  projects (:mod:`.srcpack`: tracked files, sorted, modes normalised, every
  mtime the commit's committer time), so the pack is a function of the commit
  and the subdirectory alone, and its sha256 goes into the lock;
* ``envgen snapshot`` needs the network only when the store lacks that pack:
  it fetches the commit again and refuses a pack whose sha256 differs.

Git runs with no system or global configuration (no filters, no LFS smudge,
no URL rewrites of the user's) and never prompts.  Submodules are not fetched.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import EnvgenError, FetchError
from . import srcpack

GIT_TIMEOUT = 600
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class GitSource:
    """A git requirement's source: PEP 751's ``[packages.vcs]`` table."""

    url: str  # the repository, without git+ and without the revision: https://host/repo
    commit: str  # the full commit id (``commit-id``)
    requested_revision: str  # the revision as the requirement wrote it (a commit id here)
    subdirectory: str | None = None

    @property
    def requirement_url(self) -> str:
        """Back to pip's form: ``git+URL@COMMIT[#subdirectory=…]``."""
        return f"git+{self.url}@{self.requested_revision}" + (
            f"#subdirectory={self.subdirectory}" if self.subdirectory else "")

    def describe(self) -> str:
        return f"{self.url}@{self.commit}" + (f"#subdirectory={self.subdirectory}" if self.subdirectory else "")


def parse_git_url(url: str, where: str = "") -> GitSource:
    """``git+https://host/repo@COMMIT#subdirectory=sub`` -> :class:`GitSource` (a full commit id only)."""
    prefix = f"{where}: " if where else ""
    if not url.startswith("git+"):
        raise EnvgenError(f"{prefix}{url!r} is not a git URL (git+https://…)")
    rest, _, fragment = url[4:].partition("#")
    repo, at, rev = rest.rpartition("@")
    if not at or "/" in rev or not _COMMIT.match(rev):
        raise EnvgenError(f"{prefix}{url!r} does not name a full 40-hex commit after '@'")
    sub = None
    for part in fragment.split("&") if fragment else []:
        key, _, value = part.partition("=")
        if key == "subdirectory" and value:
            sub = value.strip("/")
            if srcpack.check_member(sub):
                raise EnvgenError(f"{prefix}{url!r}: subdirectory {value!r} is not a relative path inside "
                                  "the repository")
    return GitSource(url=repo, commit=rev, requested_revision=rev, subdirectory=sub)


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
                "GIT_LFS_SKIP_SMUDGE": "1", "LC_ALL": "C", "GIT_ASKPASS": "true"})
    return env


def _git(repo: Path, *args: str, check: bool = True, what: str = "") -> subprocess.CompletedProcess:
    try:
        r = subprocess.run(["git", "-c", "core.autocrlf=false", "-c", "protocol.file.allow=always",
                            "-c", "advice.detachedHead=false", "-C", str(repo), *args],
                           capture_output=True, text=True, env=_git_env(), timeout=GIT_TIMEOUT)
    except FileNotFoundError:
        raise EnvgenError("git is not installed; it fetches the spec's git requirements",
                          hint="apt-get install git") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"git {args[0]} {what} ran over {GIT_TIMEOUT} s", hint="check the network") from None
    if check and r.returncode != 0:
        raise FetchError(f"git {args[0]} {what} failed: {_last_line(r.stderr)}", hint="check the URL and the network")
    return r


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


def checkout(src: GitSource, dest: Path) -> int:
    """Fetch *src*'s commit into a new repository at *dest* and check it out; the commit's committer time."""
    dest.mkdir(parents=True, exist_ok=True)
    _git(dest, "init", "-q", what="init")
    shallow = _git(dest, "fetch", "-q", "--depth", "1", "--no-tags", src.url, src.commit, check=False)
    if shallow.returncode != 0:
        # the server will not hand out a commit by id (or speaks the dumb protocol): fetch everything
        full = _git(dest, "fetch", "-q", "--no-tags", src.url, "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/remotes/origin/tags/*", check=False)
        if full.returncode != 0:
            raise FetchError(f"cannot fetch {src.url}: {_last_line(full.stderr)}",
                             hint="check the URL and the network (https_proxy)")
    if _git(dest, "cat-file", "-e", f"{src.commit}^{{commit}}", check=False).returncode != 0:
        raise FetchError(f"{src.url}: commit {src.commit} is not in the repository",
                         hint="check the commit id (a full 40-hex id of a commit the repository holds)")
    _git(dest, "checkout", "-q", "--detach", src.commit, what=f"of {src.commit}")
    head = _git(dest, "rev-parse", "HEAD", what="HEAD").stdout.strip()
    if head != src.commit:  # pragma: no cover - git checked out what it was asked for
        raise FetchError(f"{src.url}: HEAD is {head} after checking out {src.commit}")
    return max(0, int(_git(dest, "log", "-1", "--format=%ct", what="log").stdout.strip()))


def pack_checkout(src: GitSource, repo: Path, mtime: int) -> bytes:
    """The source pack of *src* from its checkout *repo*: the tracked files of its subdirectory."""
    root = repo / src.subdirectory if src.subdirectory else repo
    if not root.is_dir():
        raise EnvgenError(f"{src.url}@{src.commit}: no subdirectory {src.subdirectory!r}")
    return srcpack.pack_tree_bytes(root, mtime, use_git=True)


def fetch_and_pack(src: GitSource) -> bytes:
    """Fetch *src*'s commit (network) and return its deterministic source pack."""
    with tempfile.TemporaryDirectory(prefix="envgen-git-") as tmp:
        repo = Path(tmp) / "repo"
        mtime = checkout(src, repo)
        return pack_checkout(src, repo, mtime)


def source_pack(store, src: GitSource, cache: Path | None = None) -> tuple[str, int]:
    """(sha256, size) of *src*'s pack, added to *store*; fetched unless *cache* remembers a pack the store holds.

    *cache* is a directory of answers ``{url, commit, subdirectory} -> sha256``:
    a commit's content never changes, so a re-lock fetches nothing.
    """
    import json

    from ..fsutil import atomic_write

    key = hashlib.sha256(json.dumps([src.url, src.commit, src.subdirectory]).encode()).hexdigest()
    memo = cache / f"{key}.json" if cache is not None else None
    if memo is not None:
        try:
            known = json.loads(memo.read_text())
            if store.has(known["sha256"]):
                return known["sha256"], store.size_of(known["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    data = fetch_and_pack(src)
    sha = hashlib.sha256(data).hexdigest()
    with store.session():
        store.add_bytes(data, sha, f"git {src.describe()}")
    if memo is not None:
        atomic_write(memo, json.dumps({"sha256": sha, "size": len(data)}, sort_keys=True))
    return sha, len(data)


def refetch(store, name: str, src: GitSource, sha256: str) -> int:
    """Fetch *src* again for a snapshot whose store lacks its pack; the pack must hash to *sha256*."""
    data = fetch_and_pack(src)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise FetchError(f"{name}: commit {src.commit} of {src.url} packs to sha256 {actual}, "
                         f"but the lock pins {sha256}",
                         hint="the repository's content at that commit differs from when it was locked; re-lock to "
                              "accept it")
    store.add_bytes(data, sha256, f"git {src.describe()}")
    return len(data)


def pyproject_of(data: bytes) -> bytes | None:
    """The ``pyproject.toml`` at the root of a source pack, or None."""
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        try:
            member = tf.extractfile("pyproject.toml")
        except KeyError:
            return None
        return member.read() if member else None
