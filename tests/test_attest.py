"""Standard, signed metadata: SLSA provenance, DSSE signatures, OCI referrers, SIF objects, bundle members.

The quick tests use the synthetic snapshot of tests/conftest.py (``synth_project``,
served locally) and the synthetic env tree of tests/test_export.py; the tiny env
end to end (CLI export, verify --key) is slow + network, as the other tiny tests.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import jsonschema
import pytest
from test_export import make_tree, meta_of

from envgen import attest, signing
from envgen.archive import restore_bundle, write_bundle
from envgen.errors import SignatureError
from envgen.export import sif as S
from envgen.export.oci import find_referrers, image_manifest, write_oci
from envgen.lock import pylock
from envgen.snapshot import load_root, snapshot
from envgen.snapshot.store import Store
from helpers import REPO, require_tool, run_envgen

SCHEMA = json.loads((REPO / "tests/fixtures/slsa-provenance-v1.schema.json").read_text())


def check_slsa(stmt: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(stmt)


@pytest.fixture
def snapped(synth_project, tmp_path):
    st = Store(tmp_path / "st")
    lock = pylock.load(synth_project.lock_path)
    res = snapshot(st, lock)
    synth_project.store, synth_project.id, synth_project.lock = st, res.id, lock
    synth_project.manifest = load_root(st, res.id)
    return synth_project


@pytest.fixture
def keys(tmp_path):
    a = signing.generate(tmp_path / "keys" / "a.key")
    b = signing.generate(tmp_path / "keys" / "b.key")
    return {"a": (signing.load_signer(a["private"]), signing.load_public(a["public"])),
            "b": (signing.load_signer(b["private"]), signing.load_public(b["public"]))}


def names_every_object(stmt: dict, manifest: dict, sid: str, lock) -> None:
    deps = stmt["predicate"]["buildDefinition"]["resolvedDependencies"]
    listed = {d["digest"]["sha256"] for d in deps}
    assert listed == {o["sha256"] for o in manifest["objects"]} | {sid}
    assert len(deps) == len(manifest["objects"]) + 1
    urls = {w.sha256: w.url for p in [*lock.packages, *lock.build_tools] for w in p.wheels}
    urls.update({p.sdist.sha256: p.sdist.url for p in [*lock.packages, *lock.build_tools] if p.sdist})
    urls.update({d.sha256: d.url for d in lock.debian.packages})
    for d in deps:
        role = d["annotations"]["envgen_role"]
        if role in ("wheel", "sdist", "build-wheel", "build-sdist", "deb", "build-deb"):
            assert d["uri"] == urls[d["digest"]["sha256"]]
        else:  # local sources, the lock, the spec, the snapshot manifest: no URL
            assert "uri" not in d


def _oci_tools_read(out: Path, ref: str, tmp_path: Path) -> None:
    """skopeo and umoci read the layout (with its referrers in it): inspect, copy, stat, unpack (to tmp_path/bundle)."""
    for argv in (["skopeo", "inspect", f"oci:{out}:{ref}"],
                 ["skopeo", "copy", f"oci:{out}:{ref}", f"dir:{tmp_path / 'copy'}"],
                 ["umoci", "stat", "--image", f"{out}:{ref}"],
                 ["umoci", "unpack", "--rootless", "--image", f"{out}:{ref}", str(tmp_path / "bundle")]):
        p = subprocess.run(argv, capture_output=True, text=True)
        assert p.returncode == 0, (argv, p.stderr)


def test_oci_provenance_validates_names_every_object_and_leaves_the_image_alone(snapped, tmp_path, keys):
    tree = make_tree(tmp_path / "tree")
    pred = attest.provenance_predicate(snapped.manifest, snapped.id, snapped.lock, "embedded",
                                       export={"format": "oci"})
    plain = write_oci(meta_of(tree), tmp_path / "plain.oci")
    meta = meta_of(tree, provenance=pred, signers=[keys["a"][0]])
    out = tmp_path / "signed.oci"
    signed = write_oci(meta, out)
    # the referrers change neither the image index nor the image manifest
    assert (out / "index.json").read_bytes() == (tmp_path / "plain.oci/index.json").read_bytes()
    assert signed["manifest_digest"] == plain["manifest_digest"]
    assert len(json.loads((out / "index.json").read_bytes())["manifests"]) == 1
    refs = find_referrers(out, signed["manifest_digest"])
    kinds = sorted(r["manifest"]["artifactType"] for r in refs)
    assert kinds == sorted([attest.MT_CYCLONEDX, attest.MT_INTOTO, signing.MT_DSSE, signing.MT_DSSE])
    for r in refs:
        m = r["manifest"]
        assert m["config"]["mediaType"] == "application/vnd.oci.empty.v1+json" and m["config"]["size"] == 2
        assert m["subject"]["digest"] == signed["manifest_digest"]
    prov = next(r for r in refs if r["manifest"]["artifactType"] == attest.MT_INTOTO)
    stmt = json.loads((out / "blobs/sha256" / prov["manifest"]["layers"][0]["digest"][7:]).read_bytes())
    check_slsa(stmt)
    assert stmt["subject"][0]["digest"]["sha256"] == signed["manifest_digest"][7:]
    assert stmt["predicate"]["runDetails"]["builder"] == {"id": "urn:envgen:builder:embedded",
                                                          "version": {"envgen": "0.1.0"}}
    names_every_object(stmt, snapped.manifest, snapped.id, snapped.lock)
    # deterministic: a second export gives the same blobs
    write_oci(meta_of(tree, provenance=pred, signers=[keys["a"][0]]), tmp_path / "again.oci")
    assert sorted(p.name for p in (tmp_path / "again.oci/blobs/sha256").iterdir()) == sorted(
        p.name for p in (out / "blobs/sha256").iterdir())
    # verify --key: holds with key a; fails with key b, and after one flipped byte of the provenance
    assert signing.check_oci(out, keys["a"][1])["signed"] == ["provenance", "sbom"]
    with pytest.raises(SignatureError, match="no signature by key"):
        signing.check_oci(out, keys["b"][1])
    blob = out / "blobs/sha256" / prov["manifest"]["layers"][0]["digest"][7:]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(SignatureError, match="damaged"):
        signing.check_oci(out, keys["a"][1])


def test_skopeo_and_umoci_accept_the_layout_with_its_referrers(snapped, tmp_path, keys):
    require_tool("umoci", "skopeo")
    tree = make_tree(tmp_path / "tree")
    pred = attest.provenance_predicate(snapped.manifest, snapped.id, snapped.lock, export={"format": "oci"})
    meta = meta_of(tree, provenance=pred, signers=[keys["a"][0]])
    out = tmp_path / "img.oci"
    res = write_oci(meta, out)
    assert len(res["referrers"]) == 4
    _oci_tools_read(out, meta.ref, tmp_path)
    assert (tmp_path / "bundle/rootfs/.envgen/sbom.cdx.json").read_bytes() == meta.sbom


def test_verify_key_cli_one_line_and_sign_adds_referrers(snapped, tmp_path, keys):
    tree = make_tree(tmp_path / "tree")
    pred = attest.provenance_predicate(snapped.manifest, snapped.id, snapped.lock)
    out = tmp_path / "img.oci"
    write_oci(meta_of(tree, provenance=pred), out)
    pub = tmp_path / "keys/a.key.pub"
    p = run_envgen("verify", "--key", str(pub), str(out))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no signature by key" in p.stderr
    assert "Traceback" not in p.stderr
    p = run_envgen("sign", str(out), "--key", str(tmp_path / "keys/a.key"), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["signed"] == ["provenance", "sbom"]
    p = run_envgen("verify", "--key", str(pub), str(out), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["signatures"][0]["keyid"] == keys["a"][1].keyid
    # an envelope whose payload was changed: one line, exit 2
    prov = [r for r in find_referrers(out, image_manifest(out)[0]["digest"])
            if r["manifest"]["artifactType"] == signing.MT_DSSE]
    env_blob = out / "blobs/sha256" / prov[0]["manifest"]["layers"][0]["digest"][7:]
    env = json.loads(env_blob.read_bytes())
    env["payload"] = env["payload"][:-4] + ("AAAA" if env["payload"][-4:] != "AAAA" else "BBBB")
    envelope = tmp_path / "tampered.dsse.json"
    envelope.write_text(json.dumps(env))
    p = run_envgen("verify", "--key", str(pub), str(envelope))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "does not verify" in p.stderr


def test_ssh_ed25519_keys_sign_and_verify(tmp_path):
    require_tool("ssh-keygen")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")], check=True)
    signer = signing.load_signer(tmp_path / "id")
    env = signing.sign(b'{"x":1}', attest.MT_INTOTO, signer)
    assert env == signing.sign(b'{"x":1}', attest.MT_INTOTO, signer)  # ed25519: deterministic
    assert signing.verify(env, signing.load_public(tmp_path / "id.pub"), "e") == (attest.MT_INTOTO, b'{"x":1}')
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(tmp_path / "rsa")], check=True)
    p = run_envgen("sign", str(tmp_path / "id.pub"), "--key", str(tmp_path / "rsa"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "not an ed25519 key" in p.stderr


def test_keygen_refuses_to_overwrite(tmp_path):
    p = run_envgen("keygen", str(tmp_path / "k"), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600 and doc["keyid"] == signing.load_public(
        tmp_path / "k.pub").keyid
    p = run_envgen("keygen", str(tmp_path / "k"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "exists" in p.stderr


def test_sif_carries_provenance_and_signature_objects(snapped, tmp_path, keys):
    require_tool("mksquashfs", "siftool")
    tree = make_tree(tmp_path / "tree")
    pred = attest.provenance_predicate(snapped.manifest, snapped.id, snapped.lock, export={"format": "sif"})
    plain = S.write_env_sif(meta_of(tree, provenance=pred), tmp_path / "plain.sif")
    out = tmp_path / "signed.sif"
    info = S.write_env_sif(meta_of(tree, provenance=pred, signers=[keys["a"][0]]), out)
    assert info["partition_sha256"] == plain["partition_sha256"]
    sif = S.read_sif(out)
    assert [d.datatype for d in sif.descriptors] == [S.DT_DEFFILE, S.DT_LABELS, S.DT_SBOM, S.DT_PARTITION,
                                                     S.DT_GENERICJSON, S.DT_SIGNATURE, S.DT_SIGNATURE]
    sigs = [d for d in sif.descriptors if d.datatype == S.DT_SIGNATURE]
    assert sorted(d.link for d in sigs) == [3, 5]  # the SBOM and the provenance
    stmt = json.loads(sif.read(sif.descriptors[4]))
    check_slsa(stmt)
    assert stmt["subject"][0]["digest"]["sha256"] == info["partition_sha256"]
    p = subprocess.run(["siftool", "list", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "SBOM" in p.stdout and p.stdout.count("Signature") == 2 and "Squashfs" in p.stdout, p.stdout
    assert signing.check_sif(out, keys["a"][1])["signed"] == ["provenance", "sbom"]
    with pytest.raises(SignatureError):
        signing.check_sif(out, keys["b"][1])
    # envgen sign on the unsigned SIF: the same objects, the partition untouched
    p = run_envgen("sign", str(tmp_path / "plain.sif"), "--key", str(tmp_path / "keys/a.key"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "plain.sif").read_bytes() == out.read_bytes()
    # one flipped byte in the provenance object
    raw = bytearray(out.read_bytes())
    raw[sif.descriptors[4].offset + 10] ^= 1
    out.write_bytes(bytes(raw))
    p = run_envgen("verify", "--key", str(tmp_path / "keys/a.key.pub"), str(out))
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr


def test_bundle_carries_signed_attestations(snapped, tmp_path, keys):
    out = tmp_path / "b.tar"
    write_bundle(snapped.store, snapped.id, out, "none", signers=[keys["a"][0]])
    with tarfile.open(out) as tf:
        manifest = json.loads(tf.extractfile("envgen-bundle.json").read())
        members = {m["path"]: m["role"] for m in manifest["members"]}
        stmt = json.loads(tf.extractfile("attestations/provenance.intoto.json").read())
    assert {p: r for p, r in members.items() if p.startswith("attestations/")} == {
        "attestations/provenance.intoto.json": "provenance", "attestations/provenance.intoto.dsse.json": "signature",
        "attestations/sbom.cdx.json": "sbom", "attestations/sbom.cdx.dsse.json": "signature"}
    check_slsa(stmt)
    assert stmt["subject"][0]["digest"]["sha256"] == snapped.id
    names_every_object(stmt, snapped.manifest, snapped.id, snapped.lock)
    res = restore_bundle(Store(tmp_path / "st2"), out)
    assert signing.check_members(str(out), res["attestations"], keys["a"][1])["signed"] == ["provenance", "sbom"]
    with pytest.raises(SignatureError):
        signing.check_members(str(out), res["attestations"], keys["b"][1])
    changed = dict(res["attestations"])
    changed["attestations/provenance.intoto.json"] = changed["attestations/provenance.intoto.json"].replace(
        b"embedded", b"embeddeD")
    with pytest.raises(SignatureError, match="changed after signing"):
        signing.check_members(str(out), changed, keys["a"][1])
    # the CLI: another key is one line, exit 2, before anything is rebuilt
    p = run_envgen("verify", "--key", str(tmp_path / "keys/b.key.pub"), str(out))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no signature by key" in p.stderr, p.stderr
    # signed afterwards by another key: its signature joins a's, nothing else in the bundle changes
    before = _members_of(out)
    run_envgen("sign", str(out), "--key", str(tmp_path / "keys/b.key"), check=True)
    after = _members_of(out)
    assert {k for k in before if before[k] != after[k]} == {
        "envgen-bundle.json", "attestations/provenance.intoto.dsse.json", "attestations/sbom.cdx.dsse.json"}
    res = restore_bundle(Store(tmp_path / "st3"), out)  # the manifest lists the new envelopes: it restores
    for k in ("a", "b"):
        assert signing.check_members(str(out), res["attestations"], keys[k][1])["signed"] == ["provenance", "sbom"]


def _members_of(bundle) -> dict[str, bytes]:
    with tarfile.open(bundle) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isreg()}


def test_a_bundle_signed_afterwards_is_the_bundle_archive_key_writes(snapped, tmp_path, keys):
    """`envgen sign BUNDLE` on an unsigned bundle gives, byte for byte, the bundle written signed (and
    signing it again with the same key changes nothing)."""
    signed, later = tmp_path / "signed.tar.zst", tmp_path / "later.tar.zst"
    write_bundle(snapped.store, snapped.id, signed, "zstd", signers=[keys["a"][0]])
    write_bundle(snapped.store, snapped.id, later, "zstd")
    assert later.read_bytes() != signed.read_bytes()
    out = json.loads(run_envgen("sign", str(later), "--key", str(tmp_path / "keys/a.key"), "--json",
                                check=True).stdout)
    assert out["signed"] == ["attestations/provenance.intoto.dsse.json", "attestations/sbom.cdx.dsse.json"]
    assert later.read_bytes() == signed.read_bytes()
    assert out["sha256"] == hashlib.sha256(signed.read_bytes()).hexdigest()
    again = run_envgen("sign", str(later), "--key", str(tmp_path / "keys/a.key"), check=True)  # the same key again
    assert again.returncode == 0 and later.read_bytes() == signed.read_bytes()


def test_build_provenance_and_rebuild_statements_are_deterministic(snapped):
    a = attest.build_provenance(snapped.store, snapped.id, snapped.lock, "nix", "cd" * 32)
    assert attest.to_bytes(a) == attest.to_bytes(
        attest.build_provenance(snapped.store, snapped.id, snapped.lock, "nix", "cd" * 32))
    check_slsa(a)
    assert a["subject"][0]["digest"]["sha256"] == "cd" * 32
    assert a["predicate"]["runDetails"]["builder"]["id"] == "urn:envgen:builder:nix"
    ext = a["predicate"]["buildDefinition"]["externalParameters"]
    lock_obj = next(o for o in snapped.manifest["objects"] if o["role"] == "lock")
    assert ext["lock"] == {"path": lock_obj["path"], "sha256": lock_obj["sha256"]}
    names_every_object(a, snapped.manifest, snapped.id, snapped.lock)


# --------------------------------------------------------------------------- the tiny env, end to end


@pytest.mark.slow
@pytest.mark.network
def test_tiny_signed_oci_export_verifies_and_challenge_attests(tiny, tmp_path):
    require_tool("umoci", "skopeo")
    key = tmp_path / "k"
    run_envgen("keygen", str(key), check=True)
    out = tmp_path / "tiny.oci"
    doc = json.loads(run_envgen("export", str(tiny.spec), "--store", str(tiny.store), "-o", str(out),
                                "--key", str(key), "--json", check=True).stdout)
    plain = json.loads(run_envgen("export", str(tiny.spec), "--store", str(tiny.store), "-o",
                                  str(tmp_path / "plain.oci"), "--json", check=True).stdout)
    assert doc["manifest_digest"] == plain["manifest_digest"]
    assert (out / "index.json").read_bytes() == (tmp_path / "plain.oci/index.json").read_bytes()
    prov = next(r for r in doc["referrers"] if r["artifactType"] == attest.MT_INTOTO)
    m = json.loads((out / "blobs/sha256" / prov["digest"][7:]).read_bytes())
    stmt = json.loads((out / "blobs/sha256" / m["layers"][0]["digest"][7:]).read_bytes())
    check_slsa(stmt)
    manifest = load_root(Store(tiny.store), tiny.built["snapshot_id"])
    assert {d["digest"]["sha256"] for d in stmt["predicate"]["buildDefinition"]["resolvedDependencies"]} == {
        o["sha256"] for o in manifest["objects"]} | {tiny.built["snapshot_id"]}
    p = run_envgen("verify", "--key", f"{key}.pub", str(out))
    assert p.returncode == 0, p.stderr
    # the build wrote its provenance too: the tree digest as subject
    built = json.loads(Path(tiny.built["provenance"][0]).read_bytes())
    check_slsa(built)
    assert built["subject"][0]["digest"]["sha256"] == tiny.built["tree_digest"]
    _oci_tools_read(out, doc["ref"], tmp_path)
    att = tmp_path / "challenge.json"
    p = run_envgen("challenge", str(out), str(tmp_path / "plain.oci"), "--attest", str(att))
    assert p.returncode == 0, p.stderr
    c = json.loads(att.read_bytes())
    assert c["predicateType"] == attest.REBUILD_PREDICATE and c["predicate"]["verdict"] == "identical"
    assert str(tmp_path) not in att.read_text()


@pytest.mark.slow
@pytest.mark.network
def test_abide_oci_export_provenance_validates_and_names_every_object(abide, tmp_path):
    """`envgen export specs/abide.toml --format oci` of the real ABIDE env (the session's store: its tree is
    built once, shared with the pipeline test): the provenance referrer validates against the SLSA v1 schema,
    names every object of the snapshot, and its subject is the image manifest index.json points at."""
    store = Store(abide.store)
    lock = pylock.load(abide.spec.parent / "pylock.abide.toml")
    sid = abide.first["id"]
    manifest = load_root(store, sid)
    out = tmp_path / "abide.oci"
    run_envgen("export", str(abide.spec), "--store", str(abide.store), "--format", "oci", "--compression", "zstd",
               "-o", str(out), "--json", check=True)
    index = json.loads((out / "index.json").read_bytes())
    image = index["manifests"][0]["digest"]
    blobs = out / "blobs" / "sha256"
    referrers = [r["manifest"] for r in find_referrers(out, image)]
    prov = next(m for m in referrers if m["artifactType"] == attest.MT_INTOTO)
    stmt = json.loads((blobs / prov["layers"][0]["digest"][7:]).read_bytes())
    check_slsa(stmt)
    names_every_object(stmt, manifest, sid, lock)
    assert stmt["subject"][0]["digest"] == {"sha256": image[7:]}
    assert any(d["name"].startswith("scikit_learn-1.6.1") for d in stmt["predicate"]["buildDefinition"][
        "resolvedDependencies"])


def test_docker_archive_and_sqsh_get_a_provenance_file_next_to_them(snapped, tmp_path, keys):
    from envgen.commands.export import _sidecar
    from envgen.export.dockerarchive import write_docker_archive

    tree = make_tree(tmp_path / "tree")
    pred = attest.provenance_predicate(snapped.manifest, snapped.id, snapped.lock, export={"format": "docker-archive"})
    meta = meta_of(tree, provenance=pred)
    out = tmp_path / "img.tar"
    summary = write_docker_archive(meta, out)
    paths = _sidecar(meta, out, summary, [keys["a"][0]])
    assert paths == [f"{out}.intoto.json", f"{out}.intoto.dsse.json"]
    stmt = json.loads(Path(paths[0]).read_bytes())
    check_slsa(stmt)
    assert stmt["subject"][0] == {"name": meta.ref, "digest": {"sha256": summary["image_id"]}}
    assert signing.check_artifact(paths[1], keys["a"][1])["signed"] == [attest.MT_INTOTO]
    with pytest.raises(SignatureError):
        signing.check_artifact(paths[1], keys["b"][1])
