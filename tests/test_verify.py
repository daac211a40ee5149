"""`envgen archive --with-runs` and `envgen verify` on the tiny env (marked network + slow)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile

import pytest
import zstandard

from helpers import run_envgen

pytestmark = [pytest.mark.network, pytest.mark.slow]


def verify_offline(bundle, *extra):
    return subprocess.run(["unshare", "-n", sys.executable, "-m", "envgen", "verify", str(bundle), "--json", *extra],
                          capture_output=True, text=True)


def rewrite(bundle, out, change):
    """Copy a .tar.zst bundle member by member, letting change(name, data) edit or drop (None) members."""
    raw = zstandard.ZstdDecompressor().stream_reader(open(bundle, "rb")).read()
    src = tarfile.open(fileobj=io.BytesIO(raw))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for ti in src.getmembers():
            data = change(ti.name, src.extractfile(ti).read())
            if data is None:
                continue
            ti.size = len(data)
            dst.addfile(ti, io.BytesIO(data))
    out.write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))


@pytest.fixture(scope="module")
def recorded_bundle(tiny, tiny_run, tmp_path_factory):
    bundle = tmp_path_factory.mktemp("verify") / "tiny.tar.zst"
    run_envgen("archive", str(tiny.spec), "--store", str(tiny.store), "--with-runs", "--run", tiny_run,
               "-o", str(bundle), check=True)
    return bundle, tiny_run


def test_verify_reproduces_from_the_bundle_alone(recorded_bundle, tmp_path):
    bundle, run_id = recorded_bundle
    att = tmp_path / "rebuild.intoto.json"
    proc = verify_offline(bundle, "--html", str(tmp_path / "report.html"), "--attest", str(att))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    # the rebuild attestation: an in-toto Statement of what was rebuilt, the digests, the verdict
    stmt = json.loads(att.read_bytes())
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["predicateType"] == "urn:envgen:predicate:rebuild:v1"
    assert {s["digest"]["sha256"] for s in stmt["subject"]} == {result["snapshot_id"], result["tree_digest"]}
    assert stmt["predicate"]["verdict"] == "reproduced" and stmt["predicate"]["claimHolds"] is True
    assert stmt["predicate"]["got"]["treeDigest"] == result["tree_digest"]
    assert stmt["predicate"]["rebuilt"]["bundle"]["digest"]["sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert str(tmp_path) not in att.read_text() and str(bundle.parent) not in att.read_text()
    assert result["network_cut"] is True
    assert result["level"] == "reproduced" and result["claim_holds"] is True
    assert all(c["ok"] for c in result["checks"])
    assert any("recorded tree digest" in c["check"] and c["ok"] for c in result["checks"])
    assert result["runs"] == 1 and set(result["stages_s"]) == {"restore", "build", "reruns"}
    assert "Reproduced" in (tmp_path / "report.html").read_text()


def test_flipped_output_drops_to_functional_and_names_the_file(recorded_bundle, tmp_path):
    bundle, _ = recorded_bundle
    manifest = json.loads(
        tarfile.open(fileobj=io.BytesIO(zstandard.ZstdDecompressor().stream_reader(open(bundle, "rb")).read()))
        .extractfile("envgen-bundle.json").read())
    runs = None

    def find_runs(name, data):
        nonlocal runs
        if name == "runs.json":
            runs = json.loads(data)
        return data

    rewrite(bundle, tmp_path / "scan.tar.zst", find_runs)
    target = runs[0]["outputs"]["/out/results.csv"]["sha256"]
    assert any(m["path"] == f"objects/sha256/{target}" and m["role"] == "run-output" for m in manifest["members"])

    def flip(name, data):
        if name == f"objects/sha256/{target}":
            data = bytearray(data)
            data[-3] ^= 0x01
            return bytes(data)
        return data

    bad = tmp_path / "flipped.tar.zst"
    rewrite(bundle, bad, flip)
    proc = verify_offline(bad)
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert result["level"] == "functional"
    failed = [c for c in result["checks"] if not c["ok"]]
    assert failed and all(c["level"] == "reproduced" for c in failed)
    assert "/out/results.csv" in failed[0]["detail"]


def test_missing_object_drops_below_available_and_names_it(recorded_bundle, tmp_path):
    bundle, _ = recorded_bundle
    removed = []

    def drop_one_deb(name, data):
        if not removed and name.startswith("objects/sha256/") and data[:8] == b"!<arch>\n":
            removed.append(name.split("/")[-1])
            return None
        return data

    bad = tmp_path / "missing.tar.zst"
    rewrite(bundle, bad, drop_one_deb)
    proc = verify_offline(bad)
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert result["level"] is None and result["badges"]["available"] is False
    assert removed[0] in result["checks"][0]["detail"]


def test_not_a_bundle_and_newer_format(tmp_path, recorded_bundle):
    junk = tmp_path / "junk.tar.zst"
    junk.write_bytes(b"hello")
    proc = run_envgen("verify", str(junk))
    assert proc.returncode == 2 and "not an envgen bundle" in proc.stderr and "Traceback" not in proc.stderr
    bundle, _ = recorded_bundle

    def newer(name, data):
        if name == "envgen-bundle.json":
            doc = json.loads(data)
            doc["format-version"] = 9
            return json.dumps(doc).encode()
        return data

    future = tmp_path / "future.tar.zst"
    rewrite(bundle, future, newer)
    proc = run_envgen("verify", str(future))
    assert proc.returncode == 2 and "format 9" in proc.stderr, proc.stderr


def test_abide_bundle_with_a_recorded_run_verifies_to_reproduced(abide, tmp_path):
    """The issue's acceptance case: an ABIDE run archived --with-runs is Reproduced, offline, in a fresh store."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    run_envgen("run", str(abide.spec), "--store", str(abide.store), "--bind", f"{data}:/data", "--",
               "abide-pipeline", "synth", "--out", "/data", "--seed", "3", "--n-subjects", "60",
               "--sites", "NYU,UM_1,USM,UCLA_1", check=True)
    proc = run_envgen("run", str(abide.spec), "--store", str(abide.store), "--json", "--bind", f"{data}:/data:ro",
                      "--bind", f"{out}:/out", "--label", "fig1", "--", "abide-pipeline", "--input-dir", "/data",
                      "--output-dir", "/out", "--random-state", "0", "--num-folds", "3")
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run"]
    bundle = tmp_path / "abide.tar.zst"
    run_envgen("archive", str(abide.spec), "--store", str(abide.store), "--with-runs", "--run", run_id,
               "-o", str(bundle), check=True)
    proc = verify_offline(bundle)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["level"] == "reproduced" and result["network_cut"] is True
    files = {c["check"] for c in result["checks"]}
    assert any("outputs match" in f for f in files)
