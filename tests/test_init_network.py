"""`envgen init` and `envgen update` against the real PyPI and Debian archive (marked: network)."""

from __future__ import annotations

import json
import shutil

import pytest

from envgen.lock import pylock
from envgen.spec import load_spec
from helpers import REPO, require_tool, run_envgen

pytestmark = pytest.mark.network

FIXTURES = REPO / "tests" / "fixtures" / "init"
PINS = """\
six==1.16.0 \\
    --hash=sha256:1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926 \\
    --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254
packaging==24.0 \\
    --hash=sha256:2ddfb553fdf02fb784c234c7ba6ccc288296ceabec964ad2eae3777778130bc5 \\
    --hash=sha256:eb82c5e3e56209074766e6885bb04b8c38a0c015d0a30036ebe7ece34c9989e9
"""


def test_date_auto_is_the_first_midnight_after_the_newest_pins_upload(tmp_path):
    (tmp_path / "requirements.txt").write_text(PINS)
    out = json.loads(run_envgen("init", str(tmp_path), "--date", "auto", "--no-lock", "--json", check=True).stdout)
    # packaging 24.0's wheel (what the target installs) was uploaded 2024-03-10T09:39:25Z; six 1.16.0 in 2021
    assert out["date_basis"][0] == {"name": "packaging", "version": "24.0", "file": "packaging-24.0-py3-none-any.whl",
                                    "upload_time": "2024-03-10T09:39:25Z"}
    assert [b["name"] for b in out["date_basis"]] == ["packaging", "six"]
    assert out["snapshot_date"] == "2024-03-11T00:00:00Z"
    assert "packaging-24.0-py3-none-any.whl, 2024-03-10T09:39:25Z" in (tmp_path / "envgen.toml").read_text()


@pytest.mark.slow
def test_init_hashed_requirements_through_lock_snapshot_build_and_run(tmp_path):
    require_tool("bwrap", why="envgen build and run use bubblewrap")
    proj = tmp_path / "proj"
    shutil.copytree(FIXTURES / "requirements", proj)
    out = json.loads(run_envgen("init", str(proj / "requirements.txt"), "--date", "auto", "--name", "hashed",
                                "--json", check=True).stdout)
    spec_path = proj / "envgen.toml"
    assert out["snapshot_date"] == "2024-03-11T00:00:00Z" and out["lock"]["path"] == str(proj / "pylock.hashed.toml")
    assert not [w for w in out["warnings"] if "hashes" in w], out["warnings"]  # the locked artifacts are hashed ones
    lock = pylock.load(proj / "pylock.hashed.toml")
    versions = {p.name: p.version for p in lock.packages}
    assert versions["six"] == "1.16.0" and versions["packaging"] == "24.0"
    assert versions["attrs"] == "22.2.0"  # constraints.txt (-c) says attrs<23; 23.2.0 was out by then
    assert "tomli" not in versions and "pyyaml" in versions
    assert lock.spec_sha256 == load_spec(spec_path).sha256
    again = json.loads(run_envgen("lock", str(spec_path), "--json", check=True).stdout)
    assert again["changed"] is False  # init locked exactly as `envgen lock` does

    store = str(tmp_path / "store")
    run_envgen("snapshot", str(spec_path), "--store", store, check=True)
    run_envgen("build", str(spec_path), "--store", store, check=True)
    ran = run_envgen("run", str(spec_path), "--store", store, "--",
                     "python3", "-c", "import attr, packaging, six, yaml; print(attr.__version__, "
                                      "packaging.__version__, six.__version__)", check=True)
    assert ran.stdout.split() == ["22.2.0", "24.0", "1.16.0"]


@pytest.fixture
def small(tmp_path):
    d = tmp_path / "specs"
    d.mkdir()
    spec = d / "small.toml"
    spec.write_text('# two small projects\nname = "small"\nsnapshot-date = 2023-01-01T00:00:00Z  # new year\n'
                    'python = "3.11"\nrequirements = ["six", "packaging"]\n')
    run_envgen("lock", str(spec), check=True)
    return spec


def _versions(lock_path) -> dict[str, str | None]:
    return {p.name: p.version for p in pylock.load(lock_path).packages}


@pytest.mark.slow
def test_update_named_packages_holds_the_rest_and_a_full_update_releases_them(small):
    lock_path = small.parent / "pylock.small.toml"
    assert _versions(lock_path) == {"six": "1.16.0", "packaging": "22.0"}
    proc = run_envgen("update", str(small), "six", "--date", "2025-01-01", check=True)
    assert "~ pypi   six 1.16.0 -> 1.17.0 (upgraded)" in proc.stdout
    assert not [ln for ln in proc.stdout.splitlines() if "pypi" in ln and "packaging" in ln]  # held
    assert "(the other 1 PyPI packages held)" in proc.stdout
    assert _versions(lock_path) == {"six": "1.17.0", "packaging": "22.0"}  # packaging 24.2 was out: held
    spec = load_spec(small)
    assert spec.hold == {"packaging": "22.0"} and spec.snapshot_date.iso == "2025-01-01T00:00:00Z"
    assert small.read_text().startswith("# two small projects\n") and "# new year" in small.read_text()
    assert json.loads(run_envgen("lock", str(small), "--json", check=True).stdout)["changed"] is False

    out = json.loads(run_envgen("update", str(small), "--date", "2025-01-01", "--json", check=True).stdout)
    assert out["released"] == ["packaging"] and out["held"] == {} and out["written"] is True
    assert [(c["name"], c["old"], c["new"]) for c in out["changes"] if c["source"] == "pypi"] == \
        [("packaging", "22.0", "24.2")]
    assert load_spec(small).hold == {} and _versions(lock_path) == {"six": "1.17.0", "packaging": "24.2"}


@pytest.mark.slow
def test_update_moves_every_variant_with_the_spec(small):
    """A variant's lock is made from the spec: an update re-locks it at the new date too (it would be
    stale otherwise), says what moved in it beyond the default env, and writes it only with the others."""
    small.write_text(small.read_text() + '\n[variants.extra]\nrequirements = ["attrs"]\n')
    run_envgen("lock", str(small), check=True)
    variant_lock = small.parent / "pylock.small.extra.toml"
    assert _versions(variant_lock) == {"six": "1.16.0", "packaging": "22.0", "attrs": "22.2.0"}
    before = small.read_bytes(), variant_lock.read_bytes()
    dry = json.loads(run_envgen("update", str(small), "--date", "2025-01-01", "--dry-run", "--json",
                                check=True).stdout)
    assert (small.read_bytes(), variant_lock.read_bytes()) == before
    moved = {c["name"]: (c["old"], c["new"]) for c in dry["variants"]["extra"]["changes"] if c["source"] == "pypi"}
    assert moved == {"six": ("1.16.0", "1.17.0"), "packaging": ("22.0", "24.2"), "attrs": ("22.2.0", "24.3.0")}
    human = run_envgen("update", str(small), "--date", "2025-01-01", check=True).stdout
    assert "variant extra: 1 more difference" in human and "attrs 22.2.0 -> 24.3.0" in human
    assert _versions(variant_lock) == {"six": "1.17.0", "packaging": "24.2", "attrs": "24.3.0"}
    assert pylock.load(variant_lock).spec_sha256 == load_spec(small).for_variant("extra").sha256  # not stale
    assert json.loads(run_envgen("lock", str(small), "--json", check=True).stdout)["changed"] is False


@pytest.mark.slow
def test_update_dry_run_on_the_abide_spec_prints_the_diff_and_writes_nothing(abide_checkout):
    require_tool("bwrap", why="locking a local project runs its build backend under bubblewrap")
    spec = abide_checkout / "specs" / "abide.toml"
    lock = abide_checkout / "specs" / "pylock.abide.toml"
    shutil.copy(REPO / "specs" / "pylock.abide.toml", lock)
    before = spec.read_bytes(), lock.read_bytes()
    proc = run_envgen("update", str(spec), "--date", "2026-06-01", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (spec.read_bytes(), lock.read_bytes()) == before
    assert out["dry_run"] is True and out["written"] is False
    assert (out["old_snapshot_date"], out["new_snapshot_date"]) == ("2025-05-08T00:00:00Z", "2026-06-01T00:00:00Z")
    py = {c["name"]: c for c in out["changes"] if c["source"] == "pypi"}
    # pinned in the spec: unchanged; free: a year of releases
    assert "scikit-learn" not in py and "nilearn" not in py
    assert py["pandas"]["change"] == "upgraded" and py["scipy"]["change"] == "upgraded"
    assert all("security" in c for c in out["changes"] if c["source"] == "debian")
    human = run_envgen("update", str(spec), "--date", "2026-06-01", "--dry-run", check=True).stdout
    assert "snapshot date 2025-05-08T00:00:00Z -> 2026-06-01T00:00:00Z for the whole spec" in human
    assert f"~ pypi   pandas {py['pandas']['old']} -> {py['pandas']['new']} (upgraded)" in human
    assert "dry run: the spec and its lock are unchanged" in human
    assert (spec.read_bytes(), lock.read_bytes()) == before


# --------------------------------------------------------------------------- each kind of input, end to end

BUILD_SDIST = ("https://files.pythonhosted.org/packages/dd/bb/4a1b7e3a7520e310cf7bfece43788071604e1ccf693a7f0c4638c59068d6/"
               "build-1.2.2.tar.gz", "119b2fb462adef986483438377a13b2f42064a2a3a4161f24a0cca698a07ac8c")


@pytest.fixture(scope="module")
def e2e_store(tmp_path_factory):
    """One store for the end-to-end tests below: what they share (the .debs, their units) is fetched once."""
    return tmp_path_factory.mktemp("init-e2e") / "store"


def snapshot_build_run(spec_path, store, *code: str) -> list[str]:
    run_envgen("snapshot", str(spec_path), "--store", str(store), check=True)
    run_envgen("build", str(spec_path), "--store", str(store), check=True)
    ran = run_envgen("run", str(spec_path), "--store", str(store), "--", "python3", "-c", "; ".join(code),
                     check=True)
    return ran.stdout.split()


@pytest.mark.slow
def test_init_a_real_pyproject_through_lock_snapshot_build_and_run(tmp_path, e2e_store):
    """pypa/build 1.2.2's own pyproject.toml and sources (its sdist): flit_core, a dynamic version, extras."""
    require_tool("bwrap", why="envgen build and run use bubblewrap")
    import hashlib
    import io
    import tarfile
    import urllib.request

    with urllib.request.urlopen(BUILD_SDIST[0], timeout=60) as resp:
        data = resp.read()
    assert hashlib.sha256(data).hexdigest() == BUILD_SDIST[1]
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        tf.extractall(tmp_path, filter="data")
    proj = tmp_path / "build-1.2.2"
    out = json.loads(run_envgen("init", str(proj / "pyproject.toml"), "--date", "2025-05-08", "--json",
                                check=True).stdout)
    spec_path = proj / "envgen.toml"
    spec = load_spec(spec_path)
    assert [lp.path for lp in spec.local] == ["."] and out["lock"]["path"] == str(proj / "pylock.build.toml")
    lock = pylock.load(proj / "pylock.build.toml")
    names = {p.name for p in lock.packages}
    # its dependencies for CPython 3.11 on Linux: the markers leave out colorama, importlib-metadata and tomli
    assert names == {"build", "packaging", "pyproject-hooks"}
    assert lock.source_build("build").reason == "local" and lock.source_build("build").backend == "flit_core.buildapi"
    assert snapshot_build_run(spec_path, e2e_store, "import build, packaging, pyproject_hooks",
                              "print(build.__version__, build.__file__)") == \
        ["1.2.2", "/opt/env/lib/python3.11/site-packages/build/__init__.py"]


@pytest.mark.slow
def test_init_an_environment_yml_with_a_pip_section_through_lock_snapshot_build_and_run(tmp_path, e2e_store):
    require_tool("bwrap", why="envgen build and run use bubblewrap")
    proj = tmp_path / "proj"
    shutil.copytree(FIXTURES / "conda-small", proj)
    out = json.loads(run_envgen("init", str(proj / "environment.yml"), "--date", "2025-05-08", "--json",
                                check=True).stdout)
    assert out["requirements"] == ["six==1.16.*", "tomli==2.0.1", "packaging<25,>=24"]
    assert {n["what"] for n in out["not_carried"]} == {"libgcc-ng>=12", "pip"}  # each listed, with its reason
    assert all(n["reason"] for n in out["not_carried"])
    spec_path = proj / "envgen.toml"
    assert _versions(proj / "pylock.small-conda.toml") == {"six": "1.16.0", "tomli": "2.0.1", "packaging": "24.2"}
    assert snapshot_build_run(spec_path, e2e_store, "import six, tomli, packaging",
                              "print(six.__version__, tomli.loads('a = 1')['a'], packaging.__version__)") == \
        ["1.16.0", "1", "24.2"]


def test_init_the_abide_demo_dockerfile_with_pykale_pinned_locks(tmp_path):
    """The Dockerfile's pip lines, pykale@main pinned to its release: locked (uv reads torch's metadata without
    downloading its 865 MB wheel; measured 4-6 s).  Snapshot and build (3.2 GB of wheels) are not run here:
    see docs/benchmarks.md for the one run by hand."""
    proj = tmp_path / "demo"
    proj.mkdir()
    shutil.copy(FIXTURES / "abide-demo.Dockerfile", proj / "Dockerfile")
    out = json.loads(run_envgen("init", str(proj / "Dockerfile"), "--pin", "pykale==0.1.2", "--date", "2025-05-08",
                                "--json", check=True).stdout)
    assert out["requirements"] == ["nilearn", "pykale==0.1.2"] and out["python"] == "3.11"
    lock = pylock.load(proj / "pylock.demo.toml")
    versions = {p.name: p.version for p in lock.packages}
    assert versions["pykale"] == "0.1.2" and versions["nilearn"] == "0.11.1" and versions["scikit-learn"] == "1.6.1"
    assert versions["torch"] == "2.7.0"  # pykale 0.1.2 does not pin torch; the snapshot date does
    assert all(p.wheels for p in lock.packages)  # every one installs from a wheel: nothing to build
