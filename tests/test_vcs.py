"""Git requirements pinned to a commit, offline: fetching and packing a local repository (file:// URLs),
the lock's PEP 751 entry, and the snapshot stage's checks of the pack."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest

from envgen.errors import EnvgenError, FetchError, LockError, StoreError
from envgen.export.sbom import make_sbom
from envgen.lock import pylock
from envgen.snapshot import vcs
from envgen.snapshot.fetch import snapshot
from envgen.snapshot.store import Store
from envgen.swhid import archive_swhids
from helpers import make_lock, require_tool

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def git(repo: Path, *args: str, date: str = "2025-01-02T03:04:05Z") -> str:
    env = {**os.environ, **GIT_ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A repository with two commits: a project in sub/ (plus a top-level file), then a change to it."""
    require_tool("git")
    r = tmp_path / "repo"
    (r / "sub" / "pkg").mkdir(parents=True)
    (r / "sub" / "pyproject.toml").write_text('[project]\nname = "pkg"\nversion = "1.0"\n')
    (r / "sub" / "pkg" / "__init__.py").write_text("X = 1\n")
    (r / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (r / "sub" / "run.sh").chmod(0o755)
    (r / "README").write_text("top\n")
    git(r, "init", "-q", "-b", "main")
    git(r, "add", "-A")
    git(r, "commit", "-qm", "one")
    first = git(r, "rev-parse", "HEAD")
    (r / "sub" / "pkg" / "__init__.py").write_text("X = 2\n")
    git(r, "commit", "-qam", "two", date="2025-02-03T04:05:06Z")
    second = git(r, "rev-parse", "HEAD")
    return r, first, second


def src(repo: Path, commit: str, sub: str | None = None) -> vcs.GitSource:
    return vcs.parse_git_url(f"git+{repo.as_uri()}@{commit}" + (f"#subdirectory={sub}" if sub else ""))


def names(pack: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(pack), mode="r:") as tf:
        return {m.name: m for m in tf.getmembers()}


def test_parse_git_url_takes_a_full_commit_and_a_subdirectory():
    c = "0123456789abcdef0123456789abcdef01234567"
    s = vcs.parse_git_url(f"git+https://host.example/org/repo.git@{c}#subdirectory=python/pkg&egg=x")
    assert (s.url, s.commit, s.requested_revision, s.subdirectory) == (
        "https://host.example/org/repo.git", c, c, "python/pkg")
    assert s.requirement_url == f"git+https://host.example/org/repo.git@{c}#subdirectory=python/pkg"
    for bad in ("git+https://h/r@main", f"git+https://h/r@{c[:12]}", f"https://h/r@{c}",
                f"git+https://h/r@{c}#subdirectory=../up"):
        with pytest.raises(EnvgenError):
            vcs.parse_git_url(bad)


def test_pack_is_the_commits_content_alone(repo, tmp_path):
    r, first, second = repo
    (r / "sub" / "untracked.txt").write_text("not committed\n")  # the origin's work tree does not count
    a = vcs.fetch_and_pack(src(r, first, "sub"))
    assert a == vcs.fetch_and_pack(src(r, first, "sub"))  # the same bytes twice
    members = names(a)
    assert sorted(members) == ["pkg", "pkg/__init__.py", "pyproject.toml", "run.sh"]  # the subdirectory only
    assert members["run.sh"].mode == 0o755 and members["pyproject.toml"].mode == 0o644
    # every mtime is the commit's committer time (2025-01-02T03:04:05Z), not the clock's
    assert {m.mtime for m in members.values()} == {1735787045}
    b = vcs.fetch_and_pack(src(r, second, "sub"))
    assert b != a and names(b)["pkg/__init__.py"].size == len("X = 2\n")
    # the first commit is no branch tip: a shallow fetch of it by id is refused, the full fetch finds it
    whole = vcs.fetch_and_pack(src(r, first))
    assert "README" in names(whole) and "sub/pkg/__init__.py" in names(whole)


def test_the_packs_swh_directory_id_is_the_commits_git_tree(repo):
    r, first, _ = repo
    pack = vcs.fetch_and_pack(src(r, first))
    ids = archive_swhids(io.BytesIO(pack), len(pack))
    assert ids["directory"] == f"swh:1:dir:{git(r, 'rev-parse', first + '^{tree}')}"


def test_a_commit_the_repository_lacks_is_one_line(repo):
    r, _, _ = repo
    missing = "0" * 40
    with pytest.raises(FetchError) as exc:
        vcs.fetch_and_pack(src(r, missing))
    assert str(exc.value).count("\n") == 0 and f"commit {missing} is not in the repository" in str(exc.value)
    with pytest.raises(EnvgenError, match="no subdirectory 'nope'"):
        vcs.fetch_and_pack(src(r, git(r, "rev-parse", "HEAD"), "nope"))


def vcs_lock(tmp_path: Path, s: vcs.GitSource, sha: str, size: int | None) -> pylock.Lock:
    lock = make_lock(py={"six": ("1.17.0", [])})
    lock.packages.append(pylock.PyPackage(
        name="pkg", version="1.0", dependencies=["six"],
        vcs=pylock.Vcs(type="git", url=s.url, commit_id=s.commit, requested_revision=s.requested_revision,
                       subdirectory=s.subdirectory)))
    lock.source_builds = [pylock.SourceBuild(name="pkg", version="1.0", reason="vcs", backend="flit_core.buildapi",
                                             requires=[], source_sha256=sha, source_size=size)]
    lock.roots = ["pkg"]
    path = tmp_path / "pylock.demo.toml"
    path.write_text(pylock.dumps(lock))
    return pylock.load(path)


def test_the_lock_entry_is_pep_751s_vcs_table_and_names_the_pack(repo, tmp_path):
    r, first, _ = repo
    s = src(r, first, "sub")
    pack = vcs.fetch_and_pack(s)
    sha = hashlib.sha256(pack).hexdigest()
    lock = vcs_lock(tmp_path, s, sha, len(pack))
    doc = tomllib.loads(lock.path.read_text())
    entry = next(p for p in doc["packages"] if p["name"] == "pkg")
    assert entry == {"name": "pkg", "version": "1.0", "dependencies": [{"name": "six"}],
                     "vcs": {"type": "git", "url": r.as_uri(), "requested-revision": first, "commit-id": first,
                             "subdirectory": "sub"}}  # no wheels, no sdist: PEP 751 installers build it from git
    build = doc["tool"]["envgen"]["source-builds"][0]
    assert build["reason"] == "vcs" and build["source-sha256"] == sha and build["source-size"] == len(pack)
    assert pylock.dumps(lock) == lock.path.read_text()  # read back, it writes the same bytes
    # the SBOM names the commit and the pack's sha256
    sbom = json.loads(make_sbom(lock, None, "0" * 64, "demo"))
    comp = next(c for c in sbom["components"] if c["name"] == "pkg")
    assert {"type": "vcs", "url": f"git+{r.as_uri()}@{first}",
            "hashes": [{"alg": "SHA-256", "content": sha}]} in comp["externalReferences"]
    bad = lock.path.read_text().replace(f'source-sha256 = "{sha}"\n', "")
    with pytest.raises(LockError, match="source-sha256"):
        pylock.loads(bad, lock.path)


def test_snapshot_stores_the_pack_and_refuses_one_that_differs(repo, tmp_path):
    r, first, second = repo
    s = src(r, first, "sub")
    pack = vcs.fetch_and_pack(s)
    sha = hashlib.sha256(pack).hexdigest()
    lock = vcs_lock(tmp_path, s, sha, len(pack))
    lock.packages = [p for p in lock.packages if p.name == "pkg"]  # nothing to download but the commit

    store = Store(tmp_path / "store")
    with pytest.raises(StoreError, match="source pack of pkg"):
        snapshot(store, lock, offline=True)
    res = snapshot(store, lock)  # the store lacks the pack: the commit is fetched and packed again
    obj = next(o for o in res.manifest["objects"] if o["role"] == "vcs-source")
    assert obj == {"role": "vcs-source", "name": "pkg", "sha256": sha, "size": len(pack)}
    assert store.path_of(sha).read_bytes() == pack
    assert snapshot(store, lock, offline=True).id == res.id  # from the store now, offline

    other = hashlib.sha256(vcs.fetch_and_pack(src(r, second, "sub"))).hexdigest()
    (tmp_path / "moved").mkdir()
    moved = vcs_lock(tmp_path / "moved", src(r, second, "sub"), sha, None)  # the second commit, the first's pack
    moved.packages = [p for p in moved.packages if p.name == "pkg"]
    with pytest.raises(FetchError) as exc:
        snapshot(Store(tmp_path / "store2"), moved)
    msg = str(exc.value)
    assert "\n" not in msg and second in msg and sha in msg and other in msg
    assert not list((tmp_path / "store2").rglob("roots/*"))  # no snapshot root written
