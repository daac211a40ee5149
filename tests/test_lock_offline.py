"""The lock model, wheel choice, graph, diff and export, without the network."""

from __future__ import annotations

import pytest

from envgen import formats
from envgen.clock import SnapshotDate
from envgen.errors import EnvgenError, FormatError, LockError, NewerFormatError
from envgen.lock import pylock
from envgen.lock.debian import mirror_uri
from envgen.lock.diff import diff_locks
from envgen.lock.export import requirements_txt
from envgen.lock.graph import build_graph, why
from envgen.lock.resolve import parse_via
from envgen.lock.tags import best_wheel, supported_tags
from helpers import make_lock, run_envgen

LOCK_FV = formats.current("envgen-lock")


def test_roundtrip_is_byte_stable(tmp_path):
    lock = make_lock({"a": ("1.0", ["b"]), "b": ("2.0", [])}, {"libc6": "2.36-9"})
    text = pylock.dumps(lock)
    p = tmp_path / "pylock.demo.toml"
    p.write_text(text)
    again = pylock.load(p)
    assert pylock.dumps(again) == text
    assert [x.name for x in again.packages] == ["a", "b"]
    assert again.package("a").dependencies == ["b"]
    assert again.packages[0].wheels[0].upload_time.isoformat() == "2025-05-07T00:00:00+00:00"
    assert 'lock-version = "1.0"' in text and "[[packages]]" in text and "[tool.envgen]" in text


def test_newer_lock_format_refused(tmp_path):
    text = pylock.dumps(make_lock({"a": ("1.0", [])})).replace(f"format-version = {LOCK_FV}", "format-version = 7")
    p = tmp_path / "pylock.demo.toml"
    p.write_text(text)
    with pytest.raises(NewerFormatError, match="lock format 7 needs a newer envgen") as exc:
        pylock.load(p)
    msg = str(exc.value)
    assert str(p) in msg and "upgrade envgen" in msg and "\n" not in msg


def test_newer_lock_format_refused_on_the_cli(tmp_path):
    text = pylock.dumps(make_lock({"a": ("1.0", [])})).replace(f"format-version = {LOCK_FV}", "format-version = 7")
    p = tmp_path / "pylock.demo.toml"
    p.write_text(text)
    proc = run_envgen("graph", str(p))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a newer envgen" in lines[0] and "upgrade envgen" in lines[0], proc.stderr


def test_lock_without_format_version_refused(tmp_path):
    text = pylock.dumps(make_lock({"a": ("1.0", [])})).replace(f"format-version = {LOCK_FV}\n", "")
    p = tmp_path / "pylock.demo.toml"
    p.write_text(text)
    with pytest.raises(FormatError, match="lock without a valid format-version"):
        pylock.load(p)


def test_lock_snapshot_date_is_a_snapshot_date(tmp_path):
    p = tmp_path / "pylock.demo.toml"
    p.write_text(pylock.dumps(make_lock({"a": ("1.0", [])})))
    lock = pylock.load(p)
    assert isinstance(lock.snapshot_date, SnapshotDate)
    assert lock.snapshot_date.iso == "2025-05-08T00:00:00Z"


def test_mirror_uri_substitutes_archive_and_snapshot_date():
    date = SnapshotDate.parse("2025-05-08T00:00:00Z")
    template = "https://snapshot.debian.org/archive/{archive}/{snapshot-date}/"
    assert mirror_uri(template, "debian-security", date) == \
        "https://snapshot.debian.org/archive/debian-security/20250508T000000Z"
    assert mirror_uri("http://mirror.example/{archive}", "debian", date) == "http://mirror.example/debian"
    assert mirror_uri(None, "debian") == "http://deb.debian.org/debian"
    with pytest.raises(LockError, match="snapshot-date"):
        mirror_uri(template, "debian")


def test_not_an_envgen_lock(tmp_path):
    p = tmp_path / "pylock.x.toml"
    p.write_text('lock-version = "1.0"\ncreated-by = "other"\n')
    with pytest.raises(EnvgenError, match="not an envgen lock"):
        pylock.load(p)


def test_best_wheel_prefers_most_specific_compatible_tag():
    tags = supported_tags("3.11", "x86_64", (2, 36))
    files = [
        "lxml-5.4.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "lxml-5.4.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        "lxml-5.4.0-cp312-cp312-manylinux_2_28_x86_64.whl",
        "lxml-5.4.0-cp311-cp311-musllinux_1_2_x86_64.whl",
    ]
    assert best_wheel(files, tags) == "lxml-5.4.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    # a binary wheel beats the pure one; a too-new glibc is not compatible at all
    assert best_wheel(["x-1-py3-none-any.whl", "x-1-cp311-cp311-manylinux_2_17_x86_64.whl"],
                      tags).startswith("x-1-cp311")
    assert best_wheel(["x-1-cp311-cp311-manylinux_2_39_x86_64.whl"], tags) is None
    assert best_wheel(["x-1-cp311-cp311-macosx_11_0_arm64.whl"], tags) is None


def test_parse_via():
    text = (
        "joblib==1.5.0             # via nilearn, scikit-learn, -r req.in\n"
        "./pipelines/abide\n"
        "Typing_Extensions==4.13.2  # via nibabel\n"
    )
    assert parse_via(text) == {"joblib": ["nilearn", "scikit-learn"], "typing-extensions": ["nibabel"]}


def test_why_lists_every_path():
    lock = make_lock({
        "app": ("1", ["sk", "nl"]), "nl": ("1", ["sk"]), "sk": ("1", ["tp"]), "tp": ("1", []),
    })
    lock.roots = ["app", "sk"]
    g = build_graph(lock)
    paths = [[g.nodes[n]["name"] for n in p] for p in why(g, "demo", "tp")]
    assert paths == [["demo", "sk", "tp"], ["demo", "app", "sk", "tp"], ["demo", "app", "nl", "sk", "tp"]]


def test_why_unknown_package_suggests():
    g = build_graph(make_lock({"scikit-learn": ("1", [])}))
    with pytest.raises(EnvgenError, match="did you mean scikit-learn"):
        why(g, "demo", "scikit-lern")


def test_diff_classifies_changes():
    a = make_lock({"a": ("1.0", []), "b": ("2.0", []), "c": ("1.0", []), "gone": ("1", [])},
                  {"libc6": "2.36-9", "libssl3": "3.0.15-1~deb12u1"})
    b = make_lock({"a": ("1.1", []), "b": ("1.9", []), "c": ("1.0", []), "new": ("1", [])},
                  {"libc6": "2.36-9+deb12u4", "libssl3": "3.0.15-1~deb12u1"})
    b.package("c").wheels[0].sha256 = "0" * 64
    got = {(c["source"], c["name"]): c["change"] for c in diff_locks(a, b)}
    assert got == {
        ("pypi", "a"): "upgraded", ("pypi", "b"): "downgraded", ("pypi", "c"): "rebuilt",
        ("pypi", "gone"): "removed", ("pypi", "new"): "added", ("debian", "libc6"): "upgraded",
    }
    assert diff_locks(a, a) == []


def test_cli_diff_json_and_exit_status(tmp_path):
    a = tmp_path / "pylock.a.toml"
    b = tmp_path / "pylock.b.toml"
    a.write_text(pylock.dumps(make_lock({"x": ("1.0", [])})))
    b.write_text(pylock.dumps(make_lock({"x": ("2.0", [])})))
    import json

    proc = run_envgen("diff", str(a), str(b), "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["changes"] == [
        {"source": "pypi", "name": "x", "change": "upgraded", "old": "1.0", "new": "2.0"}]
    assert run_envgen("diff", str(a), str(a)).returncode == 0


def test_export_requirements_format():
    lock = make_lock({"a": ("1.0", [])})
    lock.packages.append(pylock.PyPackage(name="mine", version="0.1", directory="../mine"))
    text, count, skipped = requirements_txt(lock)
    assert count == 1 and skipped == ["mine"]
    h = lock.package("a").wheels[0].sha256
    assert f"a==1.0 \\\n    --hash=sha256:{h}\n" in text
    assert "# mine: local project" in text
