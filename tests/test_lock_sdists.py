"""Source builds in the lock, offline: the model, sdist archives, graph and diff."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest

from envgen.errors import LockError
from envgen.lock import pylock
from envgen.lock.diff import diff_build, diff_locks
from envgen.lock.graph import BUILD, build_graph, edge_kind, path_text, why
from envgen.lock.sdist import (
    DEFAULT_BACKEND,
    parse_build_system,
    sdist_build_system,
    unpack_sdist,
)
from helpers import make_lock, run_envgen

PYPROJECT = b"""\
[build-system]
requires = ["hatchling>=1.20", "hatch-vcs"]
build-backend = "backend"
backend-path = ["_build"]

[project]
name = "demo"
"""


def _tool(name: str, version: str) -> pylock.PyPackage:
    lock = make_lock({name: (version, [])})
    return lock.packages[0]


def lock_with_builds() -> pylock.Lock:
    lock = make_lock({"app": ("1.0", ["crc"]), "crc": ("1.7", [])}, {"libc6": "2.36-9", "gcc": "4:12.2.0-3"})
    lock.packages[1].wheels = []
    lock.packages[1].sdist = pylock.Artifact("sdist", "crc-1.7.tar.gz", "https://x/crc-1.7.tar.gz", "a" * 64, 10)
    lock.debian.packages[0].role = "build"  # gcc
    lock.debian.build_roots = ["busybox-static", "gcc"]
    lock.build_tools = [_tool("setuptools", "80.3.1"), _tool("setuptools", "75.0.0"), _tool("installer", "0.7.0"),
                        _tool("wheel", "0.45.1")]
    lock.source_builds = [
        pylock.SourceBuild("crc", "1.7", "no-wheel", DEFAULT_BACKEND, [], ["setuptools==80.3.1"]),
        pylock.SourceBuild("app", "1.0", "from-source", "flit_core.buildapi", ["_b"],
                           ["setuptools==75.0.0", "wheel==0.45.1"]),
    ]
    lock.source_builds.sort(key=lambda b: b.name)
    lock.build_tools.sort(key=pylock.tool_key)
    return lock


def test_source_builds_round_trip_byte_identical(tmp_path):
    lock = lock_with_builds()
    text = pylock.dumps(lock)
    p = tmp_path / "pylock.demo.toml"
    p.write_text(text)
    again = pylock.load(p)
    assert pylock.dumps(again) == text
    assert again.source_builds == lock.source_builds
    assert "[[tool.envgen.source-builds]]" in text
    assert 'reason = "no-wheel"' in text and 'backend-path = ["_b"]' in text
    # two versions of one tool, in version order; the helper finds each
    assert [(t.name, t.version) for t in again.build_tools if t.name == "setuptools"] == \
        [("setuptools", "75.0.0"), ("setuptools", "80.3.1")]
    assert again.build_tool("setuptools", "80.3.1").version == "80.3.1"
    assert again.build_tool("Setuptools", "1.0") is None
    assert again.source_build("crc").pins() == [("setuptools", "80.3.1")]
    # every pin is a build tool
    for b in again.source_builds:
        for name, version in b.pins():
            assert again.build_tool(name, version) is not None
    # the package built from source keeps its sdist and no wheel (any PEP 751 installer builds it)
    assert again.package("crc").wheels == [] and again.package("crc").sdist.filename == "crc-1.7.tar.gz"


def test_a_format_1_lock_without_source_builds_still_reads(tmp_path):
    text = pylock.dumps(make_lock({"a": ("1.0", [])}))
    text = text.replace("format-version = 2", "format-version = 1").replace("source-builds = []\n", "")
    p = tmp_path / "pylock.demo.toml"
    p.write_text(text)
    lock = pylock.load(p)
    assert lock.format_version == 1 and lock.source_builds == []


@pytest.mark.parametrize("bad, what", [
    ({"reason": "because"}, "reason"),
    ({"requires": ["setuptools>=40"]}, "exact pins"),
])
def test_bad_source_build_refused(tmp_path, bad, what):
    lock = lock_with_builds()
    text = pylock.dumps(lock)
    if "reason" in bad:
        text = text.replace('reason = "no-wheel"', 'reason = "because"')
    else:
        text = text.replace('"setuptools==80.3.1"', '"setuptools>=40"')
    p = tmp_path / "pylock.demo.toml"
    p.write_text(text)
    with pytest.raises(LockError, match=what):
        pylock.load(p)


# --------------------------------------------------------------------------- sdist archives


def make_tar(members: dict[str, bytes], links: dict[str, str] | None = None, hard: dict[str, str] | None = None,
             top: str = "demo-1.0") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        d = tarfile.TarInfo(top)
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        for name, data in members.items():
            ti = tarfile.TarInfo(name if name.startswith(("/", "..")) else f"{top}/{name}")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        for name, target in (links or {}).items():
            ti = tarfile.TarInfo(f"{top}/{name}")
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            tf.addfile(ti)
        for name, target in (hard or {}).items():
            ti = tarfile.TarInfo(f"{top}/{name}")
            ti.type = tarfile.LNKTYPE
            ti.linkname = target
            tf.addfile(ti)
    return buf.getvalue()


def make_zip(members: dict[str, bytes], top: str = "demo-1.0") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name if name.startswith(("/", "..")) else f"{top}/{name}", data)
    return buf.getvalue()


def test_build_system_from_tar_gz_and_zip():
    for data, fn in ((make_tar({"pyproject.toml": PYPROJECT, "setup.py": b""}), "demo-1.0.tar.gz"),
                     (make_zip({"pyproject.toml": PYPROJECT}), "demo-1.0.zip")):
        bs = sdist_build_system(data, fn)
        assert bs.requires == ["hatchling>=1.20", "hatch-vcs"]
        assert bs.backend == "backend" and bs.backend_path == ["_build"] and bs.declared


def test_setuptools_default_without_pyproject_or_build_system():
    for data, fn in ((make_tar({"setup.py": b"from setuptools import setup\n"}), "docopt-0.6.2.tar.gz"),
                     (make_zip({"setup.py": b""}), "old-1.0.zip"),
                     (make_tar({"pyproject.toml": b"[tool.black]\nline-length = 99\n"}), "x-1.tar.gz")):
        bs = sdist_build_system(data, fn)
        assert bs.requires == ["setuptools>=40.8.0"]
        assert bs.backend == "setuptools.build_meta:__legacy__" and bs.backend_path == [] and not bs.declared
    # requires without a backend: PEP 517's legacy backend
    bs = parse_build_system('[build-system]\nrequires = ["setuptools", "cython"]\n', "p")
    assert bs.backend == DEFAULT_BACKEND and bs.requires == ["setuptools", "cython"] and bs.declared


def test_a_nested_pyproject_is_not_the_projects():
    data = make_tar({"setup.py": b"", "vendored/pyproject.toml": PYPROJECT})
    assert not sdist_build_system(data, "x-1.tar.gz").declared


@pytest.mark.parametrize("text, what", [
    ('[build-system]\nbuild-backend = "x"\n', "requires"),
    ('[build-system]\nrequires = "setuptools"\n', "requires"),
    ('[build-system]\nrequires = []\nbackend-path = ["../out"]\n', "leaves the source tree"),
    ('[build-system\n', "invalid TOML"),
])
def test_bad_build_system_is_one_line(text, what):
    with pytest.raises(LockError, match=what) as exc:
        parse_build_system(text, "demo-1.0.tar.gz: pyproject.toml")
    assert "\n" not in str(exc.value)


def test_unpack_sdist_strips_the_top_directory(tmp_path):
    data = make_tar({"pyproject.toml": PYPROJECT, "pkg/__init__.py": b"x = 1\n"}, links={"alias": "pkg"})
    assert unpack_sdist(data, "demo-1.0.tar.gz", tmp_path) == 2
    assert (tmp_path / "pyproject.toml").read_bytes() == PYPROJECT
    assert (tmp_path / "alias" / "__init__.py").read_text() == "x = 1\n"
    z = tmp_path / "z"
    z.mkdir()
    assert unpack_sdist(make_zip({"setup.py": b"", "a/b.py": b""}), "demo-1.0.zip", z) == 2
    assert (z / "a" / "b.py").is_file()


@pytest.mark.parametrize("kind, members, links, hard", [
    ("tar", {"../evil.py": b"x"}, None, None),
    ("tar", {"/etc/evil": b"x"}, None, None),
    ("tar", {"ok/../../evil": b"x"}, None, None),
    ("tar", {}, {"out": "../../etc"}, None),
    ("tar", {}, {"abs": "/etc/passwd"}, None),
    ("tar", {}, {"here": ".", "up": "here/.."}, None),  # lexically inside, really outside
    ("tar", {}, None, {"hl": "../../etc/passwd"}),
    ("zip", {"../evil.py": b"x"}, None, None),
    ("zip", {"/abs.py": b"x"}, None, None),
    ("zip", {"a/../../evil.py": b"x"}, None, None),
])
def test_hostile_sdist_members_refused(tmp_path, kind, members, links, hard):
    dest = tmp_path / "dest"
    dest.mkdir()
    if kind == "tar":
        data, fn = make_tar({"setup.py": b"", **members}, links, hard), "demo-1.0.tar.gz"
    else:
        data, fn = make_zip({"setup.py": b"", **members}), "demo-1.0.zip"
    with pytest.raises(LockError, match="refused member") as exc:
        unpack_sdist(data, fn, dest)
    assert "\n" not in str(exc.value)
    assert list(dest.iterdir()) == []  # checked before anything is written
    assert not (tmp_path / "evil.py").exists()
    # reading the pyproject.toml of a hostile archive writes nothing and is not fooled
    assert not sdist_build_system(data, fn).declared


def test_not_an_archive():
    with pytest.raises(LockError, match="unreadable sdist"):
        sdist_build_system(b"not a tarball", "x-1.tar.gz")
    with pytest.raises(LockError, match="not an sdist archive"):
        sdist_build_system(b"", "x-1.whl")


# --------------------------------------------------------------------------- graph, why, diff


def test_graph_marks_build_edges_and_why_follows_them():
    lock = lock_with_builds()
    g = build_graph(lock)
    assert edge_kind(g, "py:crc", "build:setuptools==80.3.1") == BUILD
    assert edge_kind(g, "py:crc", "deb:gcc") == BUILD  # a compiled build gets the Debian build roots
    assert not g.has_edge("py:app", "deb:gcc") or lock.source_build("app").reason != "local"
    assert edge_kind(g, "py:app", "py:crc") == "runtime"
    assert g.has_edge("env:demo", "build:installer==0.7.0")  # a base tool: the env's build uses it
    paths = why(g, "demo", "setuptools")
    texts = [path_text(g, p) for p in paths]
    assert "demo (env) -> app 1.0 =build=> setuptools 75.0.0 [build tool]" in texts
    assert "demo (env) -> app 1.0 -> crc 1.7 =build=> setuptools 80.3.1 [build tool]" in texts
    assert why(g, "demo", "crc") == [["env:demo", "py:app", "py:crc"]]


def test_cli_graph_and_why_json_carry_edge_kinds(tmp_path):
    p = tmp_path / "pylock.demo.toml"
    p.write_text(pylock.dumps(lock_with_builds()))
    data = json.loads(run_envgen("graph", str(p), "--json", check=True).stdout)
    assert ["py:crc", "build:setuptools==80.3.1", "build"] in data["edges"]
    assert ["py:app", "py:crc", "runtime"] in data["edges"]
    text = run_envgen("graph", str(p), check=True).stdout
    assert "└═ (build) setuptools 80.3.1 [build tool]" in text
    w = json.loads(run_envgen("why", str(p), "wheel", "--json", check=True).stdout)
    assert w["paths"] == [["demo", "app", "wheel"]] and w["edges"] == [["runtime", "build"]]
    assert w["build_time"] == [True]


def test_diff_reports_build_changes_apart():
    a = lock_with_builds()
    b = lock_with_builds()
    b.source_builds[1].requires = ["setuptools==80.3.1"]  # crc
    b.source_builds[1] = pylock.SourceBuild("crc", "1.7", "no-wheel", DEFAULT_BACKEND, [], ["setuptools==80.3.1"])
    b.source_builds[0].reason = "no-wheel"  # app
    b.build_tools = [t for t in b.build_tools if t.name != "wheel"]
    assert diff_locks(a, b) == []  # nothing the env runs changed
    got = {(c["source"], c["name"]): c["change"] for c in diff_build(a, b)}
    assert got == {("source-build", "app"): "changed", ("build-tool", "wheel"): "removed"}
    assert diff_build(a, a) == []


def test_cli_diff_has_a_build_section(tmp_path):
    a, b = lock_with_builds(), lock_with_builds()
    b.build_tools = [t for t in b.build_tools if t.name != "wheel"]
    pa, pb = tmp_path / "pylock.a.toml", tmp_path / "pylock.b.toml"
    pa.write_text(pylock.dumps(a))
    pb.write_text(pylock.dumps(b))
    proc = run_envgen("diff", str(pa), str(pb))
    assert proc.returncode == 1
    assert "build time" in proc.stdout and "- build-tool wheel 0.45.1" in proc.stdout
    data = json.loads(run_envgen("diff", str(pa), str(pb), "--json").stdout)
    assert data["changes"] == [] and data["build_changes"][0]["name"] == "wheel"


def test_convert_marks_source_builds_and_refuses_neither_wheel_nor_sdist():
    import datetime as dt

    from envgen.errors import SpecError
    from envgen.lock.make import _convert
    from envgen.spec import parse_spec

    spec = parse_spec(b'name = "d"\nsnapshot-date = 2025-05-08T00:00:00Z\npython = "3.11"\nrequirements = ["a"]\n',
                      "specs/d.toml")
    t = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)

    def art(name):
        return {"name": name, "url": f"https://x/{name}", "upload-time": t, "size": 1, "hashes": {"sha256": "b" * 64}}

    uv = {"packages": [
        {"name": "whl", "version": "1", "wheels": [art("whl-1-py3-none-any.whl")], "sdist": art("whl-1.tar.gz")},
        {"name": "src", "version": "2", "wheels": [art("src-2-cp311-cp311-win_amd64.whl")], "sdist": art("src-2.zip")},
    ]}
    pkgs, reasons = _convert(uv, spec, "linux-x86_64", {}, {}, frozenset({"whl"}))
    assert reasons == {"whl": "from-source", "src": "no-wheel"}
    assert all(p.wheels == [] and p.sdist is not None for p in pkgs)
    uv["packages"].append({"name": "win-only", "version": "3", "wheels": [art("w-3-cp311-cp311-win_amd64.whl")]})
    with pytest.raises(LockError, match="win-only 3 has no wheel .* and no sdist") as exc:
        _convert(uv, spec, "linux-x86_64", {}, {})
    assert "\n" not in str(exc.value)
    with pytest.raises(SpecError, match="'build.from-source': win-only 3 has no sdist"):
        _convert({"packages": uv["packages"][2:]}, spec, "linux-x86_64", {}, {}, frozenset({"win-only"}))
    with pytest.raises(LockError, match=r"src 2 \(a build requirement of x\) has no wheel"):
        _convert(uv, spec, "linux-x86_64", {}, {}, tool_of="a build requirement of x")
