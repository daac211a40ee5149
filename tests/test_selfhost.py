"""envgen's own runtime spec (envgen/selfhost): pinned as the developers' requirements pin it, and locked."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from envgen.lock import pylock
from envgen.selfhost import SPEC
from envgen.spec import load_spec
from helpers import REPO


def _dev_pins() -> dict[str, str]:
    text = (REPO / "requirements" / "dev.txt").read_text()
    return {canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def test_the_runtime_spec_pins_exactly_envgens_dependencies_as_dev_txt_does():
    spec = load_spec(SPEC)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    pins = {}
    for r in spec.requirements:
        req = Requirement(r)
        (spec_op,) = req.specifier
        assert spec_op.operator == "==", f"{r}: the runtime spec pins exact versions"
        pins[canonicalize_name(req.name)] = spec_op.version
    assert set(pins) == wanted
    dev = _dev_pins()
    assert {n: dev[n] for n in pins} == pins


def test_the_runtime_lock_is_current_and_has_what_verify_sh_needs():
    spec = load_spec(SPEC)
    lock = pylock.load(spec.lock_path)
    assert lock.spec_sha256 == spec.sha256, "re-lock: envgen lock envgen/selfhost/envgen.toml"
    names = {d.name for d in lock.debian.packages}
    assert {"bubblewrap", "busybox-static", f"python{lock.python}"} <= names
    assert all(p.wheels for p in lock.packages), "every runtime package installs from a wheel (no build at verify)"
    assert not lock.source_builds
