"""Sources built into wheels, offline, by both builders (issue 11), on real sdist-only projects from PyPI.

tests/fixtures/sdists: docopt (no pyproject.toml: the setuptools default), pyperclip
(setuptools), crcmod (a C extension, compiled with the pinned gcc) and six (has a
wheel, built from source because the spec asks).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import REPO, require_tool, run_envgen

pytestmark = [pytest.mark.network, pytest.mark.slow]

CHECK = ("import crcmod._crcfunext as ext, crcmod.predefined, docopt, pyperclip, six, json; "
         "print(json.dumps({'ext': ext.__file__, 'crc32': crcmod.predefined.mkCrcFun('crc-32')(b'123456789'), "
         "'docopt': docopt.docopt('usage: x [--v]', argv=['--v']), 'pyperclip': pyperclip.__version__, "
         "'six': six.__version__}))")


def offline(*args: str) -> subprocess.CompletedProcess:
    """envgen with the network cut (unshare -n), as a reviewer would run it."""
    return subprocess.run(["unshare", "-n", sys.executable, "-m", "envgen", *args], capture_output=True, text=True)


def built_wheels(store: Path) -> dict[str, str]:
    docs = (json.loads(p.read_text()) for p in (store / "built-wheels").glob("*.json"))
    return {d["wheel"]: d["sha256"] for d in docs}


@pytest.fixture(scope="module")
def sdists(tmp_path_factory):
    require_tool("bwrap", "unshare")
    root = tmp_path_factory.mktemp("sdists")
    shutil.copytree(REPO / "tests" / "fixtures" / "sdists", root / "proj")
    spec = root / "proj" / "specs" / "sdists.toml"
    store = root / "store"
    lock = run_envgen("lock", str(spec), "--json", check=True)
    run_envgen("snapshot", str(spec), "--store", str(store), check=True)
    proc = offline("build", str(spec), "--store", str(store), "--json")
    assert proc.returncode == 0, proc.stderr
    return SimpleNamespace(root=root, spec=spec, store=store, lock=json.loads(lock.stdout),
                           built=json.loads(proc.stdout))


def test_lock_names_what_is_built_from_source(sdists):
    builds = {b["name"]: b["reason"] for b in sdists.lock["source_builds"]}
    assert builds == {"crcmod": "no-wheel", "docopt": "no-wheel", "pyperclip": "no-wheel", "six": "from-source"}


def test_the_built_packages_import_and_work(sdists):
    proc = run_envgen("run", str(sdists.spec), "--store", str(sdists.store), "--", "python", "-c", CHECK)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ext"].endswith("_crcfunext.cpython-311-x86_64-linux-gnu.so")  # the C extension was compiled
    assert out["crc32"] == 0xCBF43926  # the CRC-32 check value
    assert out["docopt"] == {"--v": True} and out["pyperclip"] == "1.9.0" and out["six"] == "1.17.0"
    # no compiler leaked into the env: the build root is not the tree
    assert not any(Path(sdists.built["path"], "usr/bin").glob("gcc*"))


def test_a_bundle_rebuilds_offline_in_a_fresh_store_to_the_same_bytes(sdists, tmp_path):
    bundle = tmp_path / "sdists.tar"
    run_envgen("archive", str(sdists.spec), "--store", str(sdists.store), "--compression", "none", "-o", str(bundle),
               check=True)
    fresh = tmp_path / "fresh-store"
    into = tmp_path / "restored"
    proc = offline("restore", str(bundle), "--store", str(fresh), "--into", str(into), "--json")
    assert proc.returncode == 0, proc.stderr
    restored_spec = json.loads(proc.stdout)["spec"]
    proc = offline("build", restored_spec, "--store", str(fresh), "--json")
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert again["cached"] is False and again["tree_digest"] == sdists.built["tree_digest"]
    first, second = built_wheels(sdists.store), built_wheels(fresh)
    assert set(first) == {"crcmod-1.7-cp311-cp311-linux_x86_64.whl", "docopt-0.6.2-py2.py3-none-any.whl",
                          "pyperclip-1.9.0-py3-none-any.whl", "six-1.17.0-py2.py3-none-any.whl"}
    assert first == second  # every wheel built from source is byte-identical


@pytest.mark.nix
def test_the_nix_builder_builds_the_same_wheels_and_tree(sdists):
    require_tool("nix", "nix-store")
    proc = run_envgen("build", str(sdists.spec), "--store", str(sdists.store), "--builder", "nix", "--json")
    assert proc.returncode == 0, proc.stderr
    nix = json.loads(proc.stdout)
    assert nix["tree_digest"] == sdists.built["tree_digest"]
    import hashlib

    from envgen.builders.nix import nix_env

    def q(*args: str) -> list[str]:
        return subprocess.run(["nix-store", "-q", *args], env=nix_env(), capture_output=True, text=True,
                              check=True).stdout.split()

    env_drv = q("--deriver", nix["path"])[0]
    wheel_drvs = [d for d in q("--requisites", env_drv) if "-sdists-wheel-" in d and d.endswith(".drv")]
    nix_wheels = {whl.name: hashlib.sha256(whl.read_bytes()).hexdigest()
                  for drv in wheel_drvs for out in q("--outputs", drv) for whl in Path(out).glob("*.whl")}
    assert nix_wheels == built_wheels(sdists.store)
