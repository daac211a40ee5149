"""envgen installed the way users install tools: the sdist, the wheel, a venv, pipx.

The Nix builder copies its flake (``envgen/nix/``: the templates and the Nix
library) from the package into every flake directory (envgen/builders/nix.py,
``ensure_flake``), so a plain install must ship it.  Here the sdist and the
wheel are built from the checkout with flit_core's PEP 517 hooks, a second wheel
is built from the sdist, both are checked by ``twine check --strict``, and the
wheel is installed, not editable, into a fresh venv.  That venv sees the dev
venv's third-party packages through one ``.pth`` line naming its site-packages
(a path line does not run the ``.pth`` files there, so the dev venv's editable
envgen stays out): no network.  Its ``envgen build --builder nix --force`` on the
tiny spec, run from outside the checkout, must give the embedded builder's tree
digest.  pipx, where installed, installs the checkout as a user would (pip
fetches the build backend and the dependencies, held to the dev pins).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from envgen.builders import nix as nixb
from envgen.errors import EnvgenError
from helpers import REPO, require_tool

BUILD = """\
import sys
import flit_core.buildapi as backend
kind, out = sys.argv[1:]
print(backend.build_sdist(out) if kind == "sdist" else backend.build_wheel(out))
"""

# the installed envgen's file and sys.path, as that interpreter sees them
PROBE = "import envgen, json, sys; print(json.dumps({'file': envgen.__file__, 'path': sys.path}))"


def _pep517(kind: str, project: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", BUILD, kind, str(out)], cwd=project, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """The sdist and the wheel built from the checkout, and a wheel built from that sdist."""
    root = tmp_path_factory.mktemp("dists")
    sdist = _pep517("sdist", REPO, root / "dist")
    wheel = _pep517("wheel", REPO, root / "dist")
    with tarfile.open(sdist) as tf:
        tf.extractall(root / "unpacked", filter="data")
    (project,) = (root / "unpacked").iterdir()
    again = _pep517("wheel", project, root / "from-sdist")
    return SimpleNamespace(sdist=sdist, wheel=wheel, wheel_from_sdist=again)


def _clean_env(**extra: str) -> dict[str, str]:
    """os.environ without what would put the checkout (or another interpreter's setup) on sys.path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def _inside(path: str | Path, root: Path) -> bool:
    return Path(path).resolve().is_relative_to(root.resolve())


def _assert_installed_in(python: Path, prefix: Path, cwd: Path, env: dict[str, str]) -> Path:
    """*python* imports envgen from under *prefix*, and no other envgen (the checkout's least of all) is
    on its sys.path; return the installed package directory."""
    proc = subprocess.run([str(python), "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    probe = json.loads(proc.stdout)
    package = Path(probe["file"]).parent
    assert _inside(package, prefix), probe["file"]
    for entry in probe["path"]:  # (the dev venv may live inside the checkout: its site-packages may be here)
        where = Path(entry or cwd)
        assert where.resolve() != REPO.resolve(), f"the checkout is on sys.path: {entry}"
        if (where / "envgen" / "__init__.py").is_file():
            assert where.resolve() == package.parent.resolve(), f"another envgen on sys.path: {entry}"
    return package


def _store_like(tiny, dest: Path) -> Path:
    """A store holding the tiny snapshot's objects (hard links) and nothing built: the session's
    ``tiny`` store stays as the other tests expect it."""
    shutil.copytree(tiny.store / "objects", dest / "objects", copy_function=os.link)
    return dest


def _nix_build(envgen: Path, tiny, store: Path, cwd: Path, env: dict[str, str], *extra: str,
               hide_checkout: bool = False) -> dict:
    argv = [str(envgen), "build", str(tiny.spec), "--store", str(store), "--builder", "nix", "--json", *extra]
    if hide_checkout:  # a private mount namespace with an empty tmpfs over the checkout
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"',
                str(REPO), *argv]
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _drv(default_nix: Path, attr: str) -> str:
    proc = subprocess.run(["nix", "eval", "--raw", "-f", str(default_nix), f"{attr}.drvPath"],
                          env=nixb.nix_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def _check_flake_dir(flake: Path, package: Path, tmp: Path) -> None:
    """The flake directory holds the installed package's files, and evaluates to the derivation a flake
    directory written by the checkout's envgen gives for the same data."""
    for rel, src in nixb.flake_files().items():
        installed = package / src.relative_to(nixb.PACKAGE_DIR)
        assert (flake / rel).read_bytes() == installed.read_bytes() == src.read_bytes(), rel
    ours = tmp / "checkout-flake"
    nixb.ensure_flake(ours)
    (ours / "nix" / "specs").mkdir(parents=True)
    for spec_json in (flake / "nix" / "specs").glob("*.json"):
        shutil.copy(spec_json, ours / "nix" / "specs" / spec_json.name)
    attr = "tiny-env"
    assert _drv(flake / "nix" / "default.nix", attr) == _drv(ours / "nix" / "default.nix", attr)


# --------------------------------------------------------------------------- no tools needed


def test_the_checkout_is_a_flake_directory_of_the_packaged_files():
    """The checkout's flake.nix, flake.lock and nix/default.nix are the package's templates, so a flake
    written from the package and `nix build .#` in a clone evaluate the same library."""
    assert nixb.PACKAGE_DIR == (REPO / "envgen").resolve()
    files = nixb.flake_files()
    assert {"flake.nix", "flake.lock", "nix/default.nix", "envgen/nix/lib/outputs.nix",
            "envgen/layout.py", "envgen/builders/assemble.py"} <= set(files)
    for rel, src in files.items():
        assert _inside(src, nixb.PACKAGE_DIR), src
        assert (REPO / rel).read_bytes() == src.read_bytes(), f"{rel} differs from {src}"
    assert nixb.flake_dir_for(REPO / "specs" / "abide.toml") == REPO


def test_a_flake_directory_holding_another_envgen_is_refused(tmp_path):
    other = tmp_path / "envgen" / "__init__.py"
    other.parent.mkdir()
    other.write_text('__version__ = "0.0.1"\n')
    with pytest.raises(EnvgenError) as exc:
        nixb.ensure_flake(tmp_path)
    assert "another envgen" in str(exc.value) and "\n" not in str(exc.value)
    assert "--flake-dir" in (exc.value.hint or "")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["envgen", "envgen/__init__.py"]


def test_sdist_and_wheel_ship_the_nix_library_and_pass_twine(dists):
    with zipfile.ZipFile(dists.wheel) as a, zipfile.ZipFile(dists.wheel_from_sdist) as b:
        names = a.namelist()
        assert dists.wheel.name == dists.wheel_from_sdist.name
        assert names == b.namelist()
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        assert a.read(record) == b.read(record)  # every file's hash, too
    dist_info = record.split("/")[0]
    assert {n.split("/")[0] for n in names} == {"envgen", dist_info}
    with tarfile.open(dists.sdist) as tf:
        in_sdist = set(tf.getnames())
    top = dists.sdist.name.removesuffix(".tar.gz")
    for src in nixb.flake_files().values():
        rel = f"envgen/{src.relative_to(nixb.PACKAGE_DIR).as_posix()}"
        assert rel in names, f"{rel} is not in the wheel"
        assert f"{top}/{rel}" in in_sdist, f"{rel} is not in the sdist"
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(dists.sdist), str(dists.wheel)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


# --------------------------------------------------------------------------- installed, then a Nix build


@pytest.mark.nix
@pytest.mark.slow
@pytest.mark.network
def test_the_installed_wheel_builds_the_tree_with_nix(dists, request, tmp_path):
    require_tool("nix", "nix-store", "bwrap", why="apt-get install nix-bin bubblewrap, see docs/nix.md")
    tiny = request.getfixturevalue("tiny")  # lock, snapshot, embedded build (network)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # installed by pip, from the wheel, before the .pth below: pip sees an empty environment
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index",
                           "--no-deps", "--disable-pip-version-check", str(dists.wheel)],
                          env=_clean_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    dev = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    Path(site, "dev_venv_packages.pth").write_text("".join(f"{d}\n" for d in dev))

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    package = _assert_installed_in(python, venv, elsewhere, env)
    assert (package / "nix" / "lib" / "outputs.nix").is_file()

    store = _store_like(tiny, tmp_path / "store")
    # --force: nix build --rebuild as well, so the installed flake really builds the tree
    built = _nix_build(venv / "bin" / "envgen", tiny, store, elsewhere, env, "--force")
    assert built["builder"] == "nix" and built["path"].startswith("/nix/store/")
    assert built["tree_digest"] == tiny.built["tree_digest"]
    _check_flake_dir(store / "nix-flakes" / built["snapshot_id"], package, tmp_path)


def _pinned_constraints(dest: Path) -> Path:
    """requirements/dev.txt as a constraints file (NAME==VERSION, no hashes)."""
    pins = [line.split()[0] for line in (REPO / "requirements" / "dev.txt").read_text().splitlines()
            if "==" in line and not line.startswith((" ", "#"))]
    assert pins
    dest.write_text("\n".join(pins) + "\n")
    return dest


@pytest.mark.nix
@pytest.mark.slow
@pytest.mark.network
def test_pipx_install_of_the_checkout_builds_the_tree_with_nix(request, tmp_path):
    require_tool("pipx", "nix", "nix-store", "bwrap", "unshare",
                 why="apt-get install pipx nix-bin bubblewrap util-linux")
    tiny = request.getfixturevalue("tiny")
    home, bindir = tmp_path / "pipx", tmp_path / "bin"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env(PIPX_HOME=str(home), PIPX_BIN_DIR=str(bindir))
    constraints = _pinned_constraints(tmp_path / "constraints.txt")
    proc = subprocess.run(["pipx", "install", "--pip-args", f"--constraint {constraints}", str(REPO)],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    envgen = bindir / "envgen"
    assert envgen.is_file()
    package = _assert_installed_in(home / "venvs" / "envgen" / "bin" / "python", home, elsewhere, env)
    store = _store_like(tiny, tmp_path / "store")
    # as root (CI), the build runs with the checkout hidden: nothing it reads can come from there
    built = _nix_build(envgen, tiny, store, elsewhere, env, hide_checkout=os.geteuid() == 0)
    assert built["builder"] == "nix" and built["tree_digest"] == tiny.built["tree_digest"]
    _check_flake_dir(store / "nix-flakes" / built["snapshot_id"], package, tmp_path)
