"""VERIFY.sh: a bundle verifies itself with nothing but sh, tar and coreutils (marked network + slow).

The tiny env with one recorded run is archived as a plain .tar.  On this host,
a damaged or padded bundle is refused before anything from it runs, and a
kernel without user namespaces gets one line.  In a Debian minbase root made
by debootstrap (no python3, bwrap, zstd or envgen), entered with a new mount
and network namespace and pivot_root as uid 1000, `tar -xf paper.tar VERIFY.sh
&& sh VERIFY.sh paper.tar` prints Reproduced and exits 0.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from bare_host import make_root, run_in_root
from helpers import require_tool, run_envgen

pytestmark = [pytest.mark.network, pytest.mark.slow]
HOST_PATH = "/usr/bin:/bin"  # no venv: VERIFY.sh must not need the host's Python


@pytest.fixture(scope="module")
def paper(tiny, tiny_run, tmp_path_factory):
    bundle = tmp_path_factory.mktemp("verify-sh") / "paper.tar"
    run_envgen("archive", str(tiny.spec), "--store", str(tiny.store), "--with-runs", "--run", tiny_run,
               "-o", str(bundle), check=True)
    return bundle


def verify_sh(bundle, cwd, *args, env=None):
    """`tar -xf BUNDLE VERIFY.sh && sh VERIFY.sh BUNDLE ARGS` in *cwd*, with only /usr/bin:/bin on PATH."""
    shutil.copy(bundle, cwd / "paper.tar")
    cmd = 'tar -xf paper.tar VERIFY.sh && exec sh VERIFY.sh paper.tar "$@"'
    return subprocess.run(["sh", "-c", cmd, "sh", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": HOST_PATH, "HOME": str(cwd), "LANG": "C.UTF-8", **(env or {})}, timeout=1200)


def rewrite_tar(src, dst, change=None, extra=()):
    """Copy a plain-tar bundle, letting change(name, bytes) edit a member's bytes; append *extra* TarInfos."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for ti in tin.getmembers():
            data = tin.extractfile(ti).read()
            data = change(ti.name, data) if change else data
            ti.size = len(data)
            tout.addfile(ti, io.BytesIO(data))
        for ti, data in extra:
            tout.addfile(ti, io.BytesIO(data) if data is not None else None)


def test_the_bundle_carries_envgen_and_a_pinned_busybox(paper):
    with tarfile.open(paper) as tf:
        names = tf.getnames()
        manifest = json.loads(tf.extractfile("envgen-bundle.json").read())
        script = tf.extractfile("VERIFY.sh").read().decode()
        busybox = tf.extractfile("selfhost/busybox").read()
        mode = tf.getmember("VERIFY.sh").mode
    assert names[0] == "envgen-bundle.json" and "VERIFY.sh" in names and mode == 0o755
    own = manifest["selfhost-snapshot-id"]
    with tarfile.open(paper) as tf:
        snap = tf.extractfile("selfhost/snapshot.json").read()
    assert hashlib.sha256(snap).hexdigest() == own
    # every object of envgen's own snapshot travels, and the busybox sha256 VERIFY.sh pins is the member's
    objects = {n.split("/")[-1] for n in names if n.startswith("objects/")}
    assert {o["sha256"] for o in json.loads(snap)["objects"]} <= objects
    assert f"BUSYBOX_SHA256='{hashlib.sha256(busybox).hexdigest()}'" in script
    assert "# @DATA@" not in script


def test_verify_sh_on_this_host_reproduces_and_matches_envgen_verify(paper, tmp_path):
    """Signed after it was written (`envgen sign`), the bundle verifies itself with the authors' key."""
    require_tool("bwrap")
    signed = tmp_path / "signed.tar"
    shutil.copy(paper, signed)
    key = run_envgen("keygen", str(tmp_path / "authors.key"), "--json", check=True)
    run_envgen("sign", str(signed), "--key", str(tmp_path / "authors.key"), check=True)
    proc = verify_sh(signed, tmp_path, "--json", "--html", "report.html", "--key", "authors.key.pub")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["level"] == "reproduced" and result["claim_holds"] and result["network_cut"]
    assert [s["keyid"] for s in result["signatures"]] == [json.loads(key.stdout)["keyid"]]
    assert result["signatures"][0]["signed"] == ["provenance", "sbom"]
    # another key than the authors': one line, exit 2, no verdict
    other = tmp_path / "other"
    other.mkdir()
    run_envgen("keygen", str(other / "someone.key"), check=True)
    proc = verify_sh(signed, other, "--key", "someone.key.pub")
    assert proc.returncode == 2 and "no signature by key" in proc.stderr.splitlines()[-1], proc.stderr[-2000:]
    assert "Reproduced" in (tmp_path / "report.html").read_text()
    assert not list(tmp_path.glob("envgen-verify.*"))  # the work directory is removed


def test_a_flipped_byte_is_refused_before_anything_runs(paper, tmp_path):
    def flip(name, data):
        if name == "selfhost/busybox":
            return data[:4096] + bytes([data[4096] ^ 0x01]) + data[4097:]
        return data

    bad = tmp_path / "bad.tar"
    rewrite_tar(paper, bad, flip)
    run = tmp_path / "run"
    run.mkdir()
    proc = verify_sh(bad, run, "--keep", str(run / "work"))
    assert proc.returncode == 2, proc.stderr
    assert "selfhost/busybox: FAILED" in proc.stderr
    assert "refused" in proc.stderr.splitlines()[-1] and "nothing from this bundle was run" in proc.stderr
    work = run / "work"
    assert not (work / "busybox").exists() and not any((work / "root").iterdir())  # nothing copied out, run or unpacked


def test_members_not_in_the_manifest_and_links_are_refused(paper, tmp_path):
    extra = tarfile.TarInfo("objects/sha256/" + "0" * 64)
    extra.size = 3
    bad = tmp_path / "extra.tar"
    rewrite_tar(paper, bad, extra=[(extra, b"abc")])
    (tmp_path / "a").mkdir()
    proc = verify_sh(bad, tmp_path / "a")
    assert proc.returncode == 2 and "not those its manifest lists" in proc.stderr, proc.stderr

    link = tarfile.TarInfo("selfhost/evil")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    bad2 = tmp_path / "link.tar"
    rewrite_tar(paper, bad2, extra=[(link, None)])
    (tmp_path / "b").mkdir()
    proc = verify_sh(bad2, tmp_path / "b")
    assert proc.returncode == 2 and "not a regular file" in proc.stderr, proc.stderr


def test_no_user_namespaces_is_one_line(paper, tmp_path):
    require_tool("unshare")
    # a user namespace whose own limit is 0: nothing inside may make another one
    shutil.copy(paper, tmp_path / "paper.tar")
    cmd = ("echo 0 > /proc/sys/user/max_user_namespaces && tar -xf paper.tar VERIFY.sh && "
           "exec sh VERIFY.sh paper.tar")
    proc = subprocess.run(["unshare", "-U", "-r", "sh", "-c", cmd], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": HOST_PATH, "HOME": str(tmp_path)}, timeout=600)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "does not let an unprivileged user make user namespaces" in last
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def bare_root(tmp_path_factory):
    require_tool("debootstrap")
    if os.geteuid() != 0:
        pytest.skip("debootstrap and pivot_root need root")
    root = make_root(tmp_path_factory.mktemp("bare") / "root")
    for tool in ("usr/bin/python3", "usr/bin/bwrap", "usr/bin/zstd", "usr/bin/envgen", "usr/bin/xz"):
        assert not (root / tool).exists(), f"the minbase root has {tool}"
    return root


def test_a_bare_minbase_root_as_uid_1000_reproduces(paper, bare_root):
    home = bare_root / "home" / "reviewer"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    shutil.copy(paper, home / "paper.tar")
    os.chown(home, 1000, 1000)
    os.chown(home / "paper.tar", 1000, 1000)
    proc = run_in_root(bare_root, ["/bin/sh", "-c", "tar -xf paper.tar VERIFY.sh && sh VERIFY.sh paper.tar"],
                       cwd="/home/reviewer", uid=1000, gid=1000)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "verdict: Reproduced" in proc.stdout
    assert "network cut" in proc.stdout
