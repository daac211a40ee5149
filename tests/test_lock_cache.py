"""The lock's caches: keyed by every input, so a cached lock is byte-identical to a cold one.

`envgen lock` caches the dependency edges of a resolution (uv's ``# via``
run) and each source build's hook answer.  The keys must change with every
input the answers depend on; the network tests show a warm lock gives the
bytes of a cold one, and that a changed local project is not served stale
edges.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

import pytest

from envgen.lock import pylock, resolve
from envgen.lock.buildreq import hook_key, interpreter_key
from envgen.lock.resolve import edges_key, runtime_requirements
from envgen.lock.sdist import parse_build_system
from envgen.spec import load_spec
from helpers import require_tool, run_envgen

UV = "uv 0.13.9 (x86_64-unknown-linux-gnu)"


def _wheel(name: str, version: str, tag: str = "py3-none-any") -> dict:
    fn = f"{name}-{version}-{tag}.whl"
    return {"name": fn, "url": f"https://files.example.org/{fn}",
            "hashes": {"sha256": hashlib.sha256(fn.encode()).hexdigest()}}


def _resolution(*extra: dict) -> dict:
    return {"lock-version": "1.0", "packages": [
        {"name": "abide-pipeline", "directory": {"path": "../pipelines/abide"}},
        {"name": "six", "version": "1.17.0", "wheels": [_wheel("six", "1.17.0")]},
        *extra,
    ]}


@pytest.fixture(autouse=True)
def interpreter(monkeypatch):
    """The interpreter envgen gives uv: one of the spec's Python, whatever runs these tests."""
    def args(python: str) -> list[str]:
        return ["--python", f"/usr/bin/python{python}"]

    monkeypatch.setattr(resolve, "_interpreter_args", args)


def _key(checkout: Path, resolution: dict | None = None, uv: str = UV) -> str | None:
    spec = load_spec(checkout / "specs" / "abide.toml")
    return edges_key(spec, "linux-x86_64", runtime_requirements(spec), resolution or _resolution(), uv)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_edges_key_changes_with_every_input(abide_checkout, monkeypatch):
    spec_file = abide_checkout / "specs" / "abide.toml"
    pyproject = abide_checkout / "pipelines" / "abide" / "pyproject.toml"
    base = _key(abide_checkout)
    assert base is not None and base == _key(abide_checkout)  # stable
    keys = {"base": base}

    keys["resolution"] = _key(abide_checkout, _resolution({"name": "idna", "version": "3.10",
                                                           "wheels": [_wheel("idna", "3.10")]}))
    keys["uv"] = _key(abide_checkout, uv="uv 0.13.10")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(resolve, "_interpreter_args", lambda python: ["--python", "/opt/other/bin/python3.11"])
        keys["interpreter"] = _key(abide_checkout)
    monkeypatch.setenv("ENVGEN_INDEX_URL", "https://mirror.example.org/simple")
    keys["index"] = _key(abide_checkout)
    monkeypatch.delenv("ENVGEN_INDEX_URL")

    original = spec_file.read_text()
    _edit(spec_file, '"pyyaml",', '"pyyaml",\n    "threadpoolctl",')
    keys["requirements"] = _key(abide_checkout)
    spec_file.write_text(original)
    _edit(spec_file, "snapshot-date = 2025-05-08T00:00:00Z", "snapshot-date = 2025-05-09T00:00:00Z")
    keys["snapshot date"] = _key(abide_checkout)
    spec_file.write_text(original)
    _edit(spec_file, 'python = "3.11"', 'python = "3.13"')
    _edit(spec_file, 'base = "debian/bookworm"', 'base = "debian/trixie"')
    keys["OS base"] = _key(abide_checkout)
    spec_file.write_text(original)
    assert _key(abide_checkout) == base

    original = pyproject.read_text()
    _edit(pyproject, '"threadpoolctl>=3.1",', '"threadpoolctl>=3.1",\n    "packaging>=20",')
    keys["local dependencies"] = _key(abide_checkout)
    pyproject.write_text(original)
    _edit(pyproject, 'build-backend = "flit_core.buildapi"', 'build-backend = "flit_core.buildapi:x"')
    keys["local backend"] = _key(abide_checkout)
    pyproject.write_text(original)
    assert _key(abide_checkout) == base

    assert None not in keys.values()
    assert len(set(keys.values())) == len(keys), keys


def test_edges_are_not_cached_when_the_inputs_do_not_fix_them(abide_checkout):
    # a package without a wheel for the target: uv builds its metadata from the sdist
    sdist_only = {"name": "docopt", "version": "0.6.2", "sdist": {"url": "https://files.example.org/docopt-0.6.2.tar.gz",
                                                                  "hashes": {"sha256": "0" * 64}}}
    assert _key(abide_checkout, _resolution(sdist_only)) is None
    mac_only = {"name": "pyobjc", "version": "11.0",
                "wheels": [_wheel("pyobjc", "11.0", "cp311-cp311-macosx_11_0_arm64")]}
    assert _key(abide_checkout, _resolution(mac_only)) is None
    # uv left to find an interpreter (envgen's own is another implementation, or another Python)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(resolve, "_interpreter_args", lambda python: [])
        assert _key(abide_checkout) is None
    # a local project whose dependencies its backend computes
    pyproject = abide_checkout / "pipelines" / "abide" / "pyproject.toml"
    _edit(pyproject, 'version = "0.1.0"', 'version = "0.1.0"\ndynamic = ["dependencies"]')
    assert _key(abide_checkout) is None


def test_uv_is_given_envgen_s_interpreter_only_when_it_is_the_spec_s_python(abide_checkout, monkeypatch):
    monkeypatch.undo()  # the real _interpreter_args
    spec = load_spec(abide_checkout / "specs" / "abide.toml")
    ours = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert resolve._interpreter_args(spec.python) == (["--python", sys.executable] if ours == spec.python else [])
    monkeypatch.setattr(sys.implementation, "name", "pypy")
    assert resolve._interpreter_args(spec.python) == []


def test_hook_key_changes_with_every_input():
    def deb(sha: str) -> pylock.DebPackage:
        return pylock.DebPackage(name="python3.11", version="1", architecture="amd64", filename="p.deb", size=1,
                                 sha256=sha * 64, archive="debian", url="u", snapshot_url="s", role="runtime")

    def tool(sha: str) -> pylock.PyPackage:
        return pylock.PyPackage(name="flit-core", version="3.12.0",
                                wheels=[pylock.Artifact("wheel", "flit_core.whl", "u", sha * 64)])

    bs = parse_build_system('[build-system]\nrequires = ["flit_core"]\nbuild-backend = "flit_core.buildapi"\n', "p")
    base = dict(source_sha="a" * 64, bs=bs, tools=[tool("1")], python="3.11", interpreter=interpreter_key([deb("b")]),
                epoch=1746662400)
    variants = {
        "source": {"source_sha": "c" * 64},
        "backend": {"bs": parse_build_system('[build-system]\nrequires = ["flit_core"]\n'
                                             'build-backend = "flit_core.buildapi:x"\n', "p")},
        "backend path": {"bs": parse_build_system('[build-system]\nrequires = ["flit_core"]\n'
                                                  'build-backend = "flit_core.buildapi"\nbackend-path = ["."]\n', "p")},
        "tools": {"tools": [tool("2")]},
        "python": {"python": "3.13"},
        "OS base": {"interpreter": interpreter_key([deb("d")])},
        "snapshot date": {"epoch": 1746748800},
    }
    keys = {"base": hook_key(**base)}  # type: ignore[arg-type]
    assert keys["base"] == hook_key(**base)  # type: ignore[arg-type]
    for name, change in variants.items():
        keys[name] = hook_key(**{**base, **change})  # type: ignore[arg-type]
    assert len(set(keys.values())) == len(keys), keys


# --------------------------------------------------------------------------- against PyPI and Debian


@pytest.fixture
def caches(tmp_path):
    """Fresh envgen caches that share this host's apt state (so no test pays an apt-get update)."""
    from envgen.paths import cache_dir

    shared_apt = cache_dir() / "apt"
    shared_apt.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []

    def fresh() -> dict[str, str]:
        d = tmp_path / f"cache-{len(made)}"
        d.mkdir()
        os.symlink(shared_apt, d / "apt")
        made.append(d)
        return {"ENVGEN_CACHE": str(d)}

    return fresh


def _lock(spec: Path, env: dict[str, str]) -> bytes:
    lock = spec.parent / f"pylock.{spec.stem}.toml"
    lock.unlink(missing_ok=True)  # written afresh, not compared with the last one
    run_envgen("lock", str(spec), "-q", env=env, check=True)
    return lock.read_bytes()


def _edges_entry(env: dict[str, str]) -> Path:
    entries = sorted((Path(env["ENVGEN_CACHE"]) / "lock" / "edges").iterdir())
    assert len(entries) == 1, entries
    return entries[0]


def _dependencies(data: bytes, name: str) -> list[str]:
    lock = pylock.loads(data.decode(), Path("pylock.abide.toml"))
    p = lock.package(name)
    assert p is not None
    return p.dependencies


@pytest.mark.network
def test_a_cached_lock_is_the_cold_lock_and_a_changed_project_is_not_served_stale_edges(abide_checkout, caches):
    spec = abide_checkout / "specs" / "abide.toml"
    if f"{sys.version_info.major}.{sys.version_info.minor}" != load_spec(spec).python:
        pytest.skip("edges are cached only when envgen runs on the spec's Python (uv is given that interpreter)")
    warm = caches()
    cold = _lock(spec, warm)  # nothing cached yet: uv computes the edges
    entry = _edges_entry(warm)
    assert _lock(spec, warm) == cold  # from the cache: the same bytes
    assert _edges_entry(warm) == entry

    # the cache really is read: a doctored entry shows in the lock
    true_edges = entry.read_text()
    assert re.search(r"^threadpoolctl==\S+\s+# via .*scikit-learn", true_edges, re.M)
    entry.write_text(re.sub(r"^(threadpoolctl==\S+\s+# via ).*$", r"\1abide-pipeline", true_edges, flags=re.M))
    doctored = _lock(spec, warm)
    assert doctored != cold and "threadpoolctl" not in _dependencies(doctored, "scikit-learn")

    # a local project that now also names packaging: the same pins, one more edge; the doctored
    # entry of the old inputs stays in the cache and must not be used
    pyproject = abide_checkout / "pipelines" / "abide" / "pyproject.toml"
    _edit(pyproject, '"threadpoolctl>=3.1",', '"threadpoolctl>=3.1",\n    "packaging>=20",')
    changed = _lock(spec, warm)
    assert changed == _lock(spec, caches())  # what a cold run gives
    assert "packaging" in _dependencies(changed, "abide-pipeline")
    assert "packaging" not in _dependencies(cold, "abide-pipeline")
    pins = [sorted((p.name, p.version) for p in pylock.loads(d.decode(), Path("x")).packages) for d in (cold, changed)]
    assert pins[0] == pins[1]  # only the edges moved


@pytest.mark.network
def test_hook_answers_are_cached_per_source(abide_checkout, caches):
    """A re-lock reads the hook's answer; a changed local project runs its hook again."""
    require_tool("bwrap")
    spec = abide_checkout / "specs" / "abide.toml"
    env = caches()
    first = _lock(spec, env)
    answers = sorted((Path(env["ENVGEN_CACHE"]) / "lock" / "build-requires").iterdir())
    assert len(answers) == 1
    assert _lock(spec, env) == first
    assert sorted((Path(env["ENVGEN_CACHE"]) / "lock" / "build-requires").iterdir()) == answers
    (abide_checkout / "pipelines" / "abide" / "abide_pipeline" / "extra.py").write_text("X = 1\n")
    assert _lock(spec, env) == first  # the source is not in the lock; its hook ran again
    assert len(list((Path(env["ENVGEN_CACHE"]) / "lock" / "build-requires").iterdir())) == 2


# --------------------------------------------------------------------------- the early runtime run


def test_the_early_run_is_adopted_only_when_it_is_the_run_the_spec_needs(abide_checkout):
    spec_file = abide_checkout / "specs" / "abide.toml"
    early = resolve.start_early(spec_file)
    assert early is not None
    try:
        spec = load_spec(spec_file)
        with resolve.UvSession(spec, "linux-x86_64", early) as uv:
            resolve.start(uv)
            assert early.adopted
        assert early.job.proc is not None and early.job.proc.poll() is not None  # ended with the session
    finally:
        early.close()
    assert not early.tmp.exists()

    # the file changed between the early start and validation: the early run is not used, and is ended
    early = resolve.start_early(spec_file)
    assert early is not None
    _edit(spec_file, '"pyyaml",', '"pyyaml",\n    "six",')
    try:
        with resolve.UvSession(load_spec(spec_file), "linux-x86_64", early) as uv:
            resolve.start(uv)
            assert not early.adopted
    finally:
        early.close()
    assert early.job.proc is not None and early.job.proc.poll() is not None and not early.tmp.exists()


@pytest.mark.parametrize("edit", [
    ("snapshot-date = 2025-05-08T00:00:00Z", "snapshot-date = 2999-01-01T00:00:00Z"),  # refused before any run
    ('platforms = ["linux-x86_64"]', 'platforms = ["linux-x86_64", "linux-aarch64"]'),
    ('base = "debian/bookworm"', 'base = "debian/sid"'),
    ("requirements = [", "requirements = 1\nx = ["),
    ('python = "3.11"', "python = 3.11"),
    ("[os]", "[os"),
])
def test_no_early_run_from_a_spec_that_cannot_be_locked(abide_checkout, edit):
    spec_file = abide_checkout / "specs" / "abide.toml"
    _edit(spec_file, *edit)
    assert resolve.start_early(spec_file) is None
    assert resolve.start_early(abide_checkout / "no-such.toml") is None


# --------------------------------------------------------------------------- uv's cache of PyPI's pages

def _index_args(date: str) -> list[str]:
    resolve._index_args.cache_clear()  # once per process in envgen; here, as a fresh process would
    return resolve._index_args(date)


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVGEN_CACHE", str(tmp_path / "cache"))
    for var in ("UV_CACHE_DIR", "UV_NO_CACHE", "ENVGEN_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path / "cache"
    resolve._index_args.cache_clear()


def test_pages_are_kept_only_for_snapshot_dates_a_day_before_the_cache_began_keeping_them(own_cache, monkeypatch):
    import datetime as dt
    import tomllib

    old = "2025-05-08T00:00:00Z"
    first = _index_args(old)
    assert first[0] == "--config-file" and len(first) == 2
    stamp = own_cache / "uv" / resolve.PAGES_SINCE
    since = float(stamp.read_text())
    now = dt.datetime.now(dt.UTC).timestamp()
    assert abs(since - now) < 60  # an empty cache: from now on
    config = tomllib.loads(Path(first[1]).read_text())
    assert config == {"index": [{"url": "https://pypi.org/simple", "default": True, "cache-control": {
        "api": f"max-age={resolve.INDEX_PAGE_MAX_AGE_S}", "files": "max-age=365000000, immutable"}}]}
    assert _index_args(old) == first

    def iso(t: float) -> str:
        return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    refresh = ["--default-index", "https://pypi.org/simple", "--refresh"]
    assert _index_args(iso(since - resolve.DAY_S - 60)) == first
    assert _index_args(iso(since - resolve.DAY_S + 60)) == refresh  # a page may predate it by < a day
    assert _index_args(iso(since + 3600)) == refresh
    assert resolve._uv_env()["UV_CACHE_DIR"] == str(own_cache / "uv")

    stamp.unlink()  # a stamp made for a cache holding pages: dated back by the time a page is kept
    (own_cache / "uv" / "simple-v28").mkdir()
    assert _index_args(old) == first
    assert abs(float(stamp.read_text()) - (now - resolve.INDEX_PAGE_MAX_AGE_S)) < 60
    assert _index_args(iso(now - resolve.DAY_S - 60)) == refresh

    monkeypatch.setenv("ENVGEN_INDEX_URL", "https://mirror.example.org/simple")
    assert _index_args(old) == ["--default-index", "https://mirror.example.org/simple"]
    monkeypatch.delenv("ENVGEN_INDEX_URL")
    monkeypatch.setenv("UV_CACHE_DIR", str(own_cache / "mine"))  # the user's cache: used as uv uses it
    assert _index_args(old) == ["--default-index", "https://pypi.org/simple"]
    assert resolve._uv_env()["UV_CACHE_DIR"] == str(own_cache / "mine")


def _uv_log(args: list[str], env: dict, ahead: str | None = None) -> str:
    """uv's debug log of resolving pyyaml at the ABIDE snapshot date, *ahead* of the clock (faketime)."""
    import subprocess

    cmd = [resolve.uv_bin(), "pip", "compile", "-", "-v", "--exclude-newer", "2025-05-08T00:00:00Z",
           "--python-version", "3.11", "--no-config", *args, "-o", os.devnull]
    if ahead:
        cmd = ["faketime", "-f", ahead, *cmd]
    proc = subprocess.run(cmd, input="pyyaml\n", capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


@pytest.mark.network
def test_uv_answers_from_kept_pages_an_hour_later_and_asks_again_for_a_recent_snapshot(own_cache):
    """An hour on (faketime), past PyPI's ten minutes: plain uv asks for the page again; in envgen's cache it is
    answered from the page kept, unless the snapshot date is recent."""
    require_tool("faketime")
    page = "https://pypi.org/simple/pyyaml/"
    env = resolve._uv_env()
    _uv_log(_index_args("2025-05-08T00:00:00Z"), env)  # fetched now, kept
    later = _uv_log(_index_args("2025-05-08T00:00:00Z"), env, ahead="+1h")
    assert f"Found fresh response for: {page}" in later, later[-3000:]
    import datetime as dt

    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT00:00:00Z")
    recent = _uv_log(_index_args(today), env, ahead="+1h")
    assert f"Found fresh response for: {page}" not in recent  # --refresh: asked again
    plain_env = {**env, "UV_CACHE_DIR": str(own_cache / "plain")}  # the control: PyPI's own ten minutes
    _uv_log(["--default-index", "https://pypi.org/simple"], plain_env)
    plain = _uv_log(["--default-index", "https://pypi.org/simple"], plain_env, ahead="+1h")
    assert f"Found stale response for: {page}" in plain, plain[-3000:]
