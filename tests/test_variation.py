"""Determinism under variation (issue 12), on the tiny spec: envgen/variation.py drives the real CLI.

One snapshot (the session's ``tiny`` fixture) is built and exported again
under each variation, from a scratch store whose objects are hard-linked from
the fixture's store (nothing is downloaded twice), and compared with a baseline
build: tree digest and full listing, OCI index digest and every layer diff_id,
SIF and sqsh sha256, bundle sha256.  A variation that cannot run here is
reported with its reason (and listed in docs/reproducibility.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from envgen.builders.tree import tree_digest
from envgen.variation import VARIATIONS, Harness, table
from helpers import require_tool, run_envgen

pytestmark = [pytest.mark.network, pytest.mark.slow]


def _harness(tiny, tmp_path, **kw) -> Harness:
    return Harness(tiny.root / "proj", "specs/tiny.toml", tiny.store, tmp_path / "variations", **kw)


def test_builds_and_exports_are_identical_under_every_variation(tiny, tmp_path):
    require_tool("bwrap", "mksquashfs", "taskset", "unshare")
    (tmp_path / "variations").mkdir()
    outcomes = _harness(tiny, tmp_path).run(list(VARIATIONS))
    report = table(outcomes)
    print(report)
    ran = [o for o in outcomes if not o.skipped]
    assert {o.variation for o in ran} >= {"baseline", "umask-077", "umask-002", "tz-locale", "one-cpu",
                                          "store-path"}, report
    assert all(o.error is None for o in outcomes), report
    assert all(o.identical for o in ran if o.variation != "baseline"), report
    base = outcomes[0]
    assert base.trees["embedded"]["digest"] == tiny.built["tree_digest"]
    assert {"oci index", "sif", "sqsh", "bundle"} <= set(base.artifacts)
    assert {"oci referrer application/vnd.in-toto+json", "oci referrer application/vnd.cyclonedx+json"} <= set(
        base.artifacts), sorted(base.artifacts)


@pytest.mark.nix
def test_nix_tree_is_identical_under_variations(tiny, tmp_path):
    require_tool("nix", "nix-store", why="apt-get install nix-bin, or deselect with -m 'not nix'")
    (tmp_path / "variations").mkdir()
    h = _harness(tiny, tmp_path, builders=("nix",), exports=(), bundle=False)
    outcomes = h.run(["umask-077", "store-path", "one-cpu"])
    report = table(outcomes)
    assert all(o.error is None for o in outcomes), report
    assert all(o.identical for o in outcomes[1:] if not o.skipped), report
    # the Nix tree and the embedded tree of one snapshot: one digest, exact modes and all
    assert outcomes[0].trees["nix"]["digest"] == tiny.built["tree_digest"], report


def test_challenge_a_rebuild_and_injected_differences(tiny, tmp_path):
    proc = run_envgen("challenge", str(tiny.spec), "--store", str(tiny.store), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["identical"] and doc["entries"][0] > 1000
    # a copy of the built tree with one mode changed, and one byte changed elsewhere
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", tiny.built["path"], str(copy)], check=True)
    os.chmod(copy / "etc", 0o755)
    os.chmod(copy / "etc" / "group", 0o644)
    target = copy / "opt/env/lib/python3.11/site-packages/six.py"
    os.chmod(target.parent, 0o755)
    os.chmod(target, 0o644)
    data = bytearray(target.read_bytes())
    data[10] ^= 1
    target.write_bytes(bytes(data))
    os.chmod(target, 0o444)
    os.chmod(target.parent, 0o555)
    os.chmod(copy / "etc", 0o555)
    assert tree_digest(copy)[0] != tiny.built["tree_digest"]
    proc = run_envgen("challenge", tiny.built["path"], str(copy), "--json", "--html", str(tmp_path / "r.html"))
    assert proc.returncode == 1, proc.stderr
    got = {d["path"]: d["differences"] for d in json.loads(proc.stdout)["differences"]}
    assert got == {"etc/group": ["mode"], "opt/env/lib/python3.11/site-packages/six.py": ["content"]}
    report = (tmp_path / "r.html").read_text()
    assert "etc/group" in report and "six.py" in report
    if shutil.which("diffoscope"):
        assert "<pre>" in report
    else:
        assert "diffoscope is not installed" in report
