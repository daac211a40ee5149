"""A git requirement pinned to a commit through lock, snapshot, build and run (marked network + slow).

The project is a real one: tomli 2.0.1 (flit_core), its sdist from PyPI committed into a git repository
that a local HTTP server serves (git's dumb protocol, so the fetch of a commit by id falls back to the
full fetch).  GitHub itself is out of reach from CI's machines (only PyPI and Debian are), so the same
flow against https://github.com/hukkin/tomli runs only with ENVGEN_TEST_GITHUB=1.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import urllib.request
from pathlib import Path

import pytest

from envgen.lock import pylock
from envgen.snapshot.store import Store
from helpers import require_tool, run_envgen

pytestmark = [pytest.mark.network, pytest.mark.slow]

SDIST = ("https://files.pythonhosted.org/packages/c0/3f/d7af728f075fb08564c5949a9c95e44352e23dee646869fa104a3b2060a3/"
         "tomli-2.0.1.tar.gz", "de526c12914f0c550d15924c62d72abc48d6fe7364aa87328337a31007fe8a4f")
GITHUB = ("https://github.com/hukkin/tomli", "00638abe4fd4c0f68464b313c506558ede202415")  # tomli 2.3.1, flit_core
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_AUTHOR_DATE": "2022-02-08T10:54:04Z",
           "GIT_COMMITTER_DATE": "2022-02-08T10:54:04Z", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


@pytest.fixture
def served_tomli(tmp_path):
    """(URL of a bare repository served over HTTP on 127.0.0.1, the commit holding tomli 2.0.1's sources)."""
    require_tool("git")
    with urllib.request.urlopen(SDIST[0], timeout=60) as resp:
        data = resp.read()
    assert hashlib.sha256(data).hexdigest() == SDIST[1]
    work = tmp_path / "work"
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        tf.extractall(tmp_path / "unpacked", filter="data")
    (tmp_path / "unpacked" / "tomli-2.0.1").rename(work)
    (work / "PKG-INFO").unlink()  # what the sdist adds; the repository holds the sources
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "tomli 2.0.1")
    commit = git(work, "rev-parse", "HEAD")
    served = tmp_path / "served"
    served.mkdir()
    git(tmp_path, "clone", "-q", "--bare", str(work), str(served / "tomli.git"))
    git(served / "tomli.git", "update-server-info")
    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tomli.git", commit
    finally:
        server.shutdown()
        server.server_close()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def write_spec(d, url, commit, date="2025-05-08T00:00:00Z"):
    d.mkdir(parents=True, exist_ok=True)
    spec = d / "envgen.toml"
    spec.write_text(f'name = "gitdemo"\nsnapshot-date = {date}\npython = "3.11"\n'
                    f'requirements = ["tomli @ git+{url}@{commit}", "six==1.17.0"]\n')
    return spec


def lock_snapshot_build_run(tmp_path, url, commit, date="2025-05-08T00:00:00Z"):
    print(f"git requirement: {url} at commit {commit}")
    spec = write_spec(tmp_path / "proj", url, commit, date)
    out = json.loads(run_envgen("lock", str(spec), "--json", check=True).stdout)
    lock_path = tmp_path / "proj" / "pylock.gitdemo.toml"
    first = lock_path.read_bytes()
    lock = pylock.load(lock_path)
    pkg = lock.package("tomli")
    assert pkg is not None and pkg.vcs is not None
    assert (pkg.vcs.type, pkg.vcs.url, pkg.vcs.commit_id) == ("git", url, commit) and not pkg.wheels
    build = lock.source_build("tomli")
    assert build is not None and build.reason == "vcs" and build.backend == "flit_core.buildapi"
    assert [b for b in out["source_builds"] if b["name"] == "tomli"][0]["source_sha256"] == build.source_sha256
    assert json.loads(run_envgen("lock", str(spec), "--json", check=True).stdout)["changed"] is False
    assert lock_path.read_bytes() == first  # the same bytes twice
    # what locking fetches goes into --store when one is named (the pack, the build tools, the .debs)
    lock_store = tmp_path / "lock-store"
    run_envgen("lock", str(spec), "--store", str(lock_store), check=True)
    assert Store(lock_store).has(build.source_sha256) and lock_path.read_bytes() == first

    store = tmp_path / "store"  # not the lock's: the snapshot fetches the commit again, and checks its pack
    snap = json.loads(run_envgen("snapshot", str(spec), "--store", str(store), "--json", check=True).stdout)
    assert Store(store).has(build.source_sha256)
    run_envgen("build", str(spec), "--store", str(store), check=True)
    ran = run_envgen("run", str(spec), "--store", str(store), "--", "python", "-c",
                     "import tomli, six; print(tomli.loads('a = 1')['a'], tomli.__file__)")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split()[0] == "1" and ran.stdout.split()[1].startswith("/opt/env/")
    return spec, store, build, snap


def test_a_commit_locks_snapshots_builds_and_runs(served_tomli, tmp_path):
    require_tool("bwrap", why="envgen build and run use bubblewrap")
    url, commit = served_tomli
    spec, store, build, snap = lock_snapshot_build_run(tmp_path, url, commit)

    # `envgen init` of pip's bare form (as a Dockerfile's `pip install git+…@COMMIT` has it) locks the same pack
    req = tmp_path / "fromreq"
    req.mkdir()
    (req / "requirements.txt").write_text(f"git+{url}@{commit}#egg=tomli\nsix==1.17.0\n")
    run_envgen("init", str(req / "requirements.txt"), "--date", "2025-05-08", "--name", "fromreq", check=True)
    again = pylock.load(req / "pylock.fromreq.toml")
    assert again.package("tomli").vcs == pylock.load(spec.parent / "pylock.gitdemo.toml").package("tomli").vcs
    assert again.source_build("tomli").source_sha256 == build.source_sha256

    # a bundle carries the pack like any store object: verified with the network cut, the env rebuilds
    bundle = tmp_path / "gitdemo.tar"
    run_envgen("archive", str(spec), "--store", str(store), "--without-envgen", "--compression", "none",
               "-o", str(bundle), check=True)
    proc = subprocess.run(["unshare", "-n", sys.executable, "-m", "envgen", "verify", str(bundle), "--json"],
                          capture_output=True, text=True)
    verdict = json.loads(proc.stdout)
    assert verdict["network_cut"] is True and verdict["snapshot_id"] == snap["id"], proc.stderr
    assert [c["ok"] for c in verdict["checks"] if c["check"] in ("bundle complete and intact", "env rebuilds")] \
        == [True, True], verdict["checks"]

    # a pack whose sha256 is not the lock's is refused, naming the commit and both digests
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "envgen.toml").write_bytes(spec.read_bytes())
    wrong = "0" * 64
    (bad / "pylock.gitdemo.toml").write_text(
        (spec.parent / "pylock.gitdemo.toml").read_text().replace(build.source_sha256, wrong))
    proc = run_envgen("snapshot", str(bad / "envgen.toml"), "--store", str(tmp_path / "store2"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    err = proc.stderr.strip().splitlines()[-1]
    assert commit in err and wrong in err and build.source_sha256 in err

    # a 40-hex commit that is not in the repository: one line, exit status 2, no lock written
    missing = write_spec(tmp_path / "missing", url, "1" * 40)
    proc = run_envgen("lock", str(missing))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"commit {'1' * 40} is not in the repository" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "missing" / "pylock.gitdemo.toml").exists()


@pytest.mark.skipif(not os.environ.get("ENVGEN_TEST_GITHUB"),
                    reason="GitHub is out of reach on CI's machines; set ENVGEN_TEST_GITHUB=1 to run")
def test_a_github_commit_locks_snapshots_builds_and_runs(tmp_path):
    require_tool("bwrap", "git")
    lock_snapshot_build_run(tmp_path, *GITHUB, date="2026-01-01T00:00:00Z")


@pytest.mark.nix
def test_the_nix_builder_builds_the_commit_to_the_same_tree(served_tomli, tmp_path):
    """The pack goes into the Nix store like a local project's (seeded from envgen's store by sha256)."""
    require_tool("nix", "nix-store", "bwrap", why="the Nix builder (nix-bin), and the embedded one to compare")
    url, commit = served_tomli
    spec = write_spec(tmp_path / "proj", url, commit)
    run_envgen("lock", str(spec), check=True)
    store = str(tmp_path / "store")
    run_envgen("snapshot", str(spec), "--store", store, check=True)
    built = {b: json.loads(run_envgen("build", str(spec), "--store", store, "--builder", b, "--json",
                                      check=True).stdout) for b in ("nix", "embedded")}
    assert built["nix"]["path"].startswith("/nix/store/")
    assert built["nix"]["tree_digest"] == built["embedded"]["tree_digest"]
    assert (Path(built["nix"]["path"]) / "opt/env/lib/python3.11/site-packages/tomli/__init__.py").is_file()
