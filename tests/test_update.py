"""`envgen update` and init's lock-side checks, offline: the spec edit, security marks, refusals."""

from __future__ import annotations

import hashlib

from envgen.clock import SnapshotDate
from envgen.init import check_hashes
from envgen.init.draft import Entry, Origin
from envgen.lock import pylock
from envgen.lock.resolve import parse_via
from envgen.spec import parse_spec
from envgen.update import edit_spec, is_security
from helpers import REPO, make_lock, run_envgen

SPEC = """\
# a comment that stays
name = "demo"
snapshot-date = 2025-05-08T00:00:00Z   # and this one
python = "3.11"
requirements = ["alpha", "beta"]
"""


def test_edit_spec_moves_the_date_and_holds_keeping_comments():
    text = (REPO / "specs" / "abide.toml").read_text()
    date = SnapshotDate.parse("2026-01-02T00:00:00Z")
    held = edit_spec(text, "abide.toml", date, {"pandas": "2.2.3", "numpy": "1.26.4"})
    assert held.replace("2026-01-02T00:00:00Z", "2025-05-08T00:00:00Z").startswith(text)  # only appended to
    spec = parse_spec(held.encode(), "abide.toml")
    assert spec.snapshot_date == date and spec.hold == {"numpy": "1.26.4", "pandas": "2.2.3"}
    assert "# Held at their locked versions by `envgen update SPEC PKG" in held
    released = edit_spec(held, "abide.toml", date, None)
    assert "[hold]" not in released and parse_spec(released.encode(), "abide.toml").hold == {}
    assert edit_spec(SPEC, "d.toml", date, None) == SPEC.replace("2025-05-08", "2026-01-02")


def test_security_updates_are_marked():
    new = make_lock(debs={"libssl3": "3.0.15-1~deb12u1", "libc6": "2.36-9+deb12u9", "zlib1g": "1:1.2.13.dfsg-1"})
    for d in new.debian.packages:
        if d.name == "zlib1g":
            d.archive = "debian-security"
    ch = [{"source": "debian", "name": n, "new": v, "change": "upgraded"} for n, v in
          [("libssl3", "3.0.15-1~deb12u1"), ("libc6", "2.36-9+deb12u9"), ("zlib1g", "1:1.2.13.dfsg-1")]]
    assert [is_security(c, new) for c in ch] == [True, True, True]
    plain = make_lock(debs={"tzdata": "2025b-0+deb12u1", "dash": "0.5.12-2"})
    assert is_security({"source": "debian", "name": "dash", "new": "0.5.12-2", "change": "upgraded"}, plain) is False
    assert is_security({"source": "pypi", "name": "six", "new": "1.17.0", "change": "upgraded"}, plain) is False
    assert is_security({"source": "debian", "name": "dash", "new": None, "change": "removed"}, plain) is False


def _project(tmp_path):
    d = tmp_path / "specs"
    d.mkdir()
    (d / "demo.toml").write_text(SPEC)
    lock = make_lock(py={"alpha": ("1.0", ["beta"]), "beta": ("2.0", [])}, debs={"libc6": "2.36-9"})
    (d / "pylock.demo.toml").write_text(pylock.dumps(lock))
    return d / "demo.toml"


def _one_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("envgen: error:")]
    assert "Traceback" not in proc.stderr
    return line


def test_update_refuses_unknown_packages_future_dates_and_specs_without_a_lock(tmp_path):
    spec = _project(tmp_path)
    before = spec.read_bytes(), (spec.parent / "pylock.demo.toml").read_bytes()
    err = _one_line(run_envgen("update", str(spec), "gamma", "--date", "2025-06-01"))
    assert "gamma is not a PyPI package of" in err
    err = _one_line(run_envgen("update", str(spec), "--date", "2999-01-01"))
    assert "in the future" in err
    err = _one_line(run_envgen("update", str(spec), "--date", "last tuesday"))
    assert "--date last tuesday" in err
    assert (spec.read_bytes(), (spec.parent / "pylock.demo.toml").read_bytes()) == before
    (spec.parent / "pylock.demo.toml").unlink()
    err = _one_line(run_envgen("update", str(spec)))
    assert "no lock yet" in err and "envgen lock" in err


def test_hashed_pins_are_compared_with_the_lock():
    lock = make_lock(py={"six": ("1.16.0", [])})
    wheel = lock.package("six").wheels[0]
    good = Entry(_req("six==1.16.0"), Origin("requirements.txt", 1), (wheel.sha256, "0" * 64))
    assert check_hashes([good], lock) == []
    bad = Entry(_req("six==1.16.0"), Origin("requirements.txt", 1), (hashlib.sha256(b"x").hexdigest(),))
    (w,) = check_hashes([bad], lock)
    assert w.startswith("requirements.txt:1:") and wheel.filename in w and "none of the 1 hashes" in w
    other = Entry(_req("six==1.15.0"), Origin("requirements.txt", 1), (wheel.sha256,))
    assert "the lock has six 1.16.0" in check_hashes([other], lock)[0]


def test_constraint_annotations_are_not_parents():
    parents = parse_via("six==1.16.0               # via -c /tmp/x/constraints.txt\n"
                        "packaging==24.0           # via pytest, -c /tmp/x/constraints.txt\n")
    assert parents == {"six": [], "packaging": ["pytest"]}


def _req(text: str):
    from packaging.requirements import Requirement

    return Requirement(text)
