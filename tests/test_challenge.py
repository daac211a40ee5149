"""Canonical tree modes, the exact-mode tree digest and `envgen challenge` on small synthetic trees (offline)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from envgen.builders.tree import canonicalize, compare_listings, listing, make_readonly, tree_digest
from envgen.challenge import challenge_paths
from helpers import run_envgen


def _tree(root: Path, umask: int) -> Path:
    old = os.umask(umask)
    try:
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "group").write_text("root:x:0:\n")
        (root / "usr" / "bin").mkdir(parents=True)
        exe = root / "usr" / "bin" / "tool"
        exe.write_bytes(b"#!/bin/false\n")
        os.chmod(exe, 0o4755 & ~umask)  # setuid from a package: dropped
        (root / "tmp").mkdir()
        os.chmod(root / "tmp", 0o1777)
        (root / "locked").mkdir()
        (root / "locked" / "inside").write_text("x")
        os.chmod(root / "locked", 0o500)
        os.symlink("usr/bin/tool", root / "link")
    finally:
        os.umask(old)
    return root


def _modes(root: Path) -> dict[str, int]:
    return {p: stat.S_IMODE(os.lstat(root / p).st_mode) for p in ("etc", "etc/group", "usr/bin/tool", "tmp",
                                                                   "locked", "locked/inside")}


def test_canonical_modes_do_not_depend_on_the_umask(tmp_path):
    a = _tree(tmp_path / "a", 0o022)
    b = _tree(tmp_path / "b", 0o077)
    assert _modes(a) != _modes(b)  # the defect: the umask leaks into the modes
    for root in (a, b):
        canonicalize(root)
    assert _modes(a) == _modes(b) == {"etc": 0o755, "etc/group": 0o644, "usr/bin/tool": 0o755, "tmp": 0o755,
                                      "locked": 0o755, "locked/inside": 0o644}
    for root in (a, b):
        make_readonly(root)
    assert tree_digest(a) == tree_digest(b)
    assert {line.split(" ", 2)[1] for line in listing(a)} == {"0555", "0444", "0777"}


def test_digest_covers_exact_modes(tmp_path):
    root = _tree(tmp_path / "t", 0o022)
    canonicalize(root)
    make_readonly(root)
    before, lines = tree_digest(root)
    os.chmod(root / "etc" / "group", 0o644)  # only the write bit: the old normalised digest did not see it
    after, lines2 = tree_digest(root)
    assert before != after
    diffs = compare_listings(lines, lines2)
    assert [(d["path"], d["differences"]) for d in diffs] == [("etc/group", ["mode"])]


def test_challenge_names_each_differing_file(tmp_path):
    a = _tree(tmp_path / "a", 0o022)
    b = _tree(tmp_path / "b", 0o022)
    for root in (a, b):
        canonicalize(root)
    os.chmod(b / "etc" / "group", 0o600)
    (b / "usr" / "bin" / "tool").write_bytes(b"#!/bin/true\n")
    os.unlink(b / "link")
    os.symlink("elsewhere", b / "link")
    (b / "extra").write_text("new\n")
    _, _, diffs = challenge_paths(a, b, tmp_path / "work")
    got = {d["path"]: d["differences"] for d in diffs}
    assert got == {"etc/group": ["mode"], "usr/bin/tool": ["size", "content"], "link": ["link target"],
                   "extra": ["missing in a"]}
    # the command: exit 1, one JSON document naming them; exit 0 for identical trees
    proc = run_envgen("challenge", str(a), str(b), "--json", "--html", str(tmp_path / "r.html"))
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert not doc["identical"] and {d["path"] for d in doc["differences"]} == set(got)
    report = (tmp_path / "r.html").read_text()
    assert "etc/group" in report and "usr/bin/tool" in report
    assert ("diffoscope is not installed" in report) != doc["diffoscope"]
    proc = run_envgen("challenge", str(a), str(a))
    assert proc.returncode == 0 and "identical" in proc.stdout


def test_challenge_refuses_what_it_cannot_read(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"not an image")
    proc = run_envgen("challenge", str(tmp_path / "x.bin"), str(tmp_path / "x.bin"))
    assert proc.returncode == 2 and "not an env tree, OCI layout, SIF or squashfs" in proc.stderr
