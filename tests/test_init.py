"""`envgen init` offline (--no-lock): each kind of project file becomes the expected spec."""

from __future__ import annotations

import json
import shutil
import tomllib

import pytest
from packaging.requirements import Requirement

from envgen.init import yamlish
from envgen.init.conda import pep440
from envgen.init.draft import InitError
from envgen.snapshot.vcs import parse_git_url
from envgen.spec import load_spec
from helpers import REPO, run_envgen

FIXTURES = REPO / "tests" / "fixtures" / "init"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def project(tmp_path):
    """A copy of tests/fixtures/init/KIND in tmp_path (the spec is written next to it)."""

    def _copy(kind: str):
        dest = tmp_path / kind
        if (FIXTURES / kind).is_dir():
            shutil.copytree(FIXTURES / kind, dest)
        else:
            dest.mkdir()
            shutil.copy(FIXTURES / kind, dest / kind)
        return dest

    return _copy


def init(*args, check=True):
    proc = run_envgen("init", *args, "--no-lock", "--json")
    if check:
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)
    return proc


def one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("envgen: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return errors[0]


def test_requirements_txt_with_includes_hashes_markers_and_constraints(project):
    d = project("requirements")
    out = init(str(d / "requirements.txt"), "--date", "2025-01-01")
    spec_path = d / "envgen.toml"
    assert out["spec"] == str(spec_path)
    spec = load_spec(spec_path)
    # -r base.in first (where it is included), then the hashed pins as exact pins, the marker kept
    assert spec.requirements == ["attrs", "six==1.16.0", "packaging==24.0", 'pyyaml>=6; sys_platform == "linux"']
    assert spec.constraints == ["attrs<23"]  # -c constraints.txt
    assert spec.snapshot_date.iso == "2025-01-01T00:00:00Z"
    assert (spec.python, spec.os_base, spec.name) == ("3.11", "debian/bookworm", "requirements")
    text = spec_path.read_text()
    assert "--hash=" not in text and "the lock re-derives each artifact's sha256" in text
    not_carried = {o["what"]: o for o in out["not_carried"]}
    assert "index" in not_carried["--extra-index-url https://download.pytorch.org/whl/cpu"]["reason"]
    tomli = not_carried['tomli==2.0.1; python_version < "3.11"']
    assert tomli["origin"] == "requirements.txt:12" and "marker is false" in tomli["reason"]
    for o in out["not_carried"]:  # listed in the spec too, with the reason
        assert f"{o['origin']}: {o['what']}: {o['reason']}" in text


def test_same_input_same_bytes_and_no_overwrite_without_force(project):
    d = project("requirements")
    init(str(d / "requirements.txt"), "--date", "2025-01-01")
    first = (d / "envgen.toml").read_bytes()
    err = one_line_error(init(str(d / "requirements.txt"), "--date", "2025-01-01", check=False))
    assert "exists" in err and "--force" in err
    assert (d / "envgen.toml").read_bytes() == first
    init(str(d), "--date", "2025-01-01", "--force")  # the directory: its one requirements file
    assert (d / "envgen.toml").read_bytes() == first


def test_pyproject_is_local_and_extras_are_chosen(project):
    d = project("pyproject")
    out = init(str(d), "--date", "2025-01-01")
    spec = load_spec(d / "envgen.toml")
    assert [lp.path for lp in spec.local] == ["."]
    assert spec.requirements == [] and spec.name == "demo-tool"
    assert any("yaml, test" in n or "old, test, yaml" in n for n in out["notes"]), out["notes"]
    out = init(str(d), "--date", "2025-01-01", "--extra", "test", "--force")
    spec = load_spec(d / "envgen.toml")
    # test = ["pytest>=8", "demo.tool[yaml]"]: its own extra brings the yaml group in
    assert spec.requirements == ["pytest>=8", "pyyaml>=6"]
    out = init(str(d), "--date", "2025-01-01", "--extra", "old", "--force")
    assert load_spec(d / "envgen.toml").requirements == []  # tomli only below 3.11
    assert any("tomli" in o["what"] and "marker is false" in o["reason"] for o in out["not_carried"])
    err = one_line_error(init(str(d), "--extra", "nope", "--force", check=False))
    assert "--extra nope" in err and "old, test, yaml" in err


def test_pyproject_requires_python_chooses_the_base(project):
    d = project("pyproject")
    pp = d / "pyproject.toml"
    pp.write_text(pp.read_text().replace('requires-python = ">=3.10"', 'requires-python = ">=3.12"'))
    init(str(d), "--date", "2025-01-01")
    spec = load_spec(d / "envgen.toml")
    assert (spec.python, spec.os_base) == ("3.13", "debian/trixie")
    err = one_line_error(init(str(d), "--base", "debian/bookworm", "--force", check=False))
    assert ">=3.12" in err and "debian/trixie" in err
    pp.write_text(pp.read_text().replace('">=3.12"', '">=3.14"'))
    err = one_line_error(init(str(d), "--force", check=False))
    assert "no OS base" in err and "debian/bookworm has 3.11" in err and "debian/trixie has 3.13" in err


def test_python_option_is_checked_against_the_bases(project):
    d = project("requirements")
    err = one_line_error(init(str(d / "requirements.txt"), "--python", "3.12", check=False))
    assert "--python 3.12" in err and "debian/bookworm has 3.11" in err and "debian/trixie has 3.13" in err
    err = one_line_error(init(str(d / "requirements.txt"), "--python", "3.11", "--base", "debian/trixie",
                              check=False))
    assert "debian/trixie ships Python 3.13" in err and "debian/bookworm" in err
    init(str(d / "requirements.txt"), "--python", "3.13", "--date", "2025-01-01")
    assert load_spec(d / "envgen.toml").os_base == "debian/trixie"
    assert not (d / "pylock.requirements.toml").exists()


def test_conda_environment_maps_what_it_can_and_says_why_not_for_the_rest(project):
    d = project("conda")
    proc = run_envgen("init", str(d / "environment.yml"), "--no-lock", "--date", "2025-01-01")
    assert proc.returncode == 0, proc.stderr
    spec = load_spec(d / "envgen.toml")
    assert spec.name == "abide-conda" and spec.python == "3.11"
    assert spec.requirements == ["numpy==1.26.*", "scipy==1.13.1", "pandas<2.3,>=2.2", "matplotlib==3.8.4",
                                 "torch==2.3.0.*", "nilearn==0.11.1", "six>=1.16"]
    text = (d / "envgen.toml").read_text()
    for name, why in [("cudatoolkit=11.8", "CUDA"), ("mkl", "BLAS"), ("libgcc-ng>=12", "Debian base provides"),
                      ("some-conda-only-thing", "not in envgen's table"), ("pip", "the installer itself")]:
        # printed on stderr, and in the spec's comment, each with its reason
        assert any(name in ln and why in ln for ln in proc.stderr.splitlines() if "not carried" in ln), name
        assert any(ln.startswith("#") and f": {name}: " in ln and why in ln for ln in text.splitlines()), name
    assert "py311h0" in text  # the dropped build string is noted


def test_conda_python_without_a_base_takes_the_next_one(project):
    d = project("conda")
    env = d / "environment.yml"
    env.write_text(env.read_text().replace("python=3.11", "python=3.12"))
    out = init(str(env), "--date", "2025-01-01")
    assert (out["python"], out["base"]) == ("3.13", "debian/trixie")
    assert any("Python 3.12, which no OS base ships" in n for n in out["notes"])


@pytest.mark.parametrize("conda, pep", [
    ("", ""), ("=1.26", "==1.26.*"), ("=1.26.*", "==1.26.*"), ("==1.26.4", "==1.26.4"),
    ("=1.26.4=py311h_0", "==1.26.4.*"),
    (">=1.2,<2", ">=1.2,<2"), ("1.26.4 py311h_0", "==1.26.4"), (">=1.2", ">=1.2"),
])
def test_conda_versions_to_pep440(conda, pep):
    assert pep440(conda)[0] == pep


def test_conda_versions_without_a_pep440_form():
    assert pep440("1.2|1.3")[0] is None and "OR" in pep440("1.2|1.3")[1]
    assert pep440("[version='>=1']")[0] is None


def test_dockerfile_branch_is_refused_in_one_line(project):
    d = project("abide-demo.Dockerfile")
    err = one_line_error(init(str(d / "abide-demo.Dockerfile"), check=False))
    assert "git+https://github.com/pykale/pykale@main" in err and "'main'" in err
    assert "--pin pykale==VERSION" in err and "40-hex commit" in err
    assert not (d / "envgen.toml").exists()


def test_dockerfile_pinned_to_a_release_or_a_commit(project):
    d = project("abide-demo.Dockerfile")
    df = d / "abide-demo.Dockerfile"
    out = init(str(df), "--pin", "pykale==0.1.2", "--date", "2025-05-08")
    spec = load_spec(d / "envgen.toml")
    assert spec.requirements == ["nilearn", "pykale==0.1.2"] and spec.name == "abide-demo"
    # FROM python:3.10: no OS base has 3.10, so the next one, said out loud
    assert spec.python == "3.11" and any("Python 3.10" in n for n in out["notes"])
    assert any(o["what"] == "pip" for o in out["not_carried"])  # `pip install --upgrade pip`
    assert any("ENTRYPOINT" in n for n in out["notes"])

    df.write_text(df.read_text().replace("pykale@main", f"pykale@{COMMIT}"))
    init(str(df), "--date", "2025-05-08", "--force")
    spec = load_spec(d / "envgen.toml")
    assert spec.requirements == ["nilearn", f"pykale @ git+https://github.com/pykale/pykale@{COMMIT}"]
    # the spec names the commit, which `envgen lock` fetches and pins (tests/test_vcs*.py)
    src = parse_git_url(Requirement(spec.requirements[1]).url or "")
    assert (src.url, src.commit, src.subdirectory) == ("https://github.com/pykale/pykale", COMMIT, None)
    df.write_text(df.read_text().replace(f"pykale@{COMMIT}", f"pykale@{COMMIT[:10]}"))
    assert "short commit" in one_line_error(init(str(df), "--force", check=False))


def test_dockerfile_finds_copied_requirements_and_local_projects(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "pyproject.toml").write_text('[project]\nname = "app"\nversion = "1"\n')
    (tmp_path / "reqs.txt").write_text("six==1.16.0\n")
    (tmp_path / "Dockerfile").write_text(
        "FROM debian:bookworm\nARG SIX=1.16.0\nENV PKG_VERSION=24.0\n"
        "COPY reqs.txt /tmp/\nCOPY app /src/app\nWORKDIR /src\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends git \\\n"
        " && pip3 install -r /tmp/reqs.txt ./app \"packaging==${PKG_VERSION}\" --index-url https://mirror.example"
        " 2>/dev/null\n"
        'RUN ["python3", "-m", "pip", "install", "--no-deps", "attrs"]\n')
    out = init(str(tmp_path / "Dockerfile"), "--date", "2025-01-01")
    spec = load_spec(tmp_path / "envgen.toml")
    assert spec.requirements == ["six==1.16.0", "packaging==24.0", "attrs"]
    assert [lp.path for lp in spec.local] == ["app"]
    whats = {o["what"] for o in out["not_carried"]}
    assert "apt-get install git" in whats and "--no-deps" in whats and "--index-url https://mirror.example" in whats
    (tmp_path / "Dockerfile").write_text("FROM python:3.11\nRUN pip install -r /elsewhere/r.txt\n")
    err = one_line_error(init(str(tmp_path / "Dockerfile"), "--force", check=False))
    assert "Dockerfile:2" in err and "/elsewhere/r.txt" in err and "COPY" in err


def test_pin_must_name_a_requirement(project):
    d = project("requirements")
    err = one_line_error(init(str(d / "requirements.txt"), "--pin", "numpy==1.26.4", check=False))
    assert "--pin numpy==1.26.4" in err and "no requirement names numpy" in err
    err = one_line_error(init(str(d / "requirements.txt"), "--pin", "six>=1", check=False))
    assert "NAME==VERSION" in err


def test_a_directory_with_several_candidates_asks_which(tmp_path):
    (tmp_path / "requirements.txt").write_text("six\n")
    (tmp_path / "environment.yml").write_text("dependencies:\n  - numpy\n")
    err = one_line_error(init(str(tmp_path), check=False))
    assert "requirements.txt, environment.yml" in err
    out = init(str(tmp_path / "requirements.txt"), str(tmp_path / "environment.yml"), "--date", "2025-01-01")
    assert out["requirements"] == ["six", "numpy"]


def test_floating_or_direct_urls_in_requirement_files(tmp_path):
    r = tmp_path / "requirements.txt"
    for line, needle in [("-e git+https://github.com/o/proj.git#egg=proj", "default branch"),
                         ("proj @ https://example.org/proj-1.0.tar.gz", "direct URL"),
                         ("six==${SIX_VERSION}", "environment variable"),
                         ("-e ./nowhere", "not a project directory"),
                         ("--frobnicate", "unknown pip option --frobnicate")]:
        r.write_text(line + "\n")
        err = one_line_error(init(str(r), "--force", check=False))
        assert "requirements.txt:1" in err and needle in err, (line, err)


def test_the_written_spec_is_a_spec(project):
    """Every fixture gives a spec that loads, whose TOML round-trips, with a one-line comment per omission."""
    for kind, args in [("requirements", []), ("pyproject", ["--extra", "test"]), ("conda", []),
                       ("abide-demo.Dockerfile", ["--pin", "pykale==0.1.2"])]:
        d = project(kind)
        init(str(d / kind if kind.endswith(".Dockerfile") else d), *args, "--date", "2025-01-01")
        data = tomllib.loads((d / "envgen.toml").read_text())
        assert data["snapshot-date"].isoformat() == "2025-01-01T00:00:00+00:00"
        load_spec(d / "envgen.toml")


# --------------------------------------------------------------------------- the environment.yml reader


def test_yaml_subset_reads_environment_files():
    doc = yamlish.loads(
        "# c\nname: demo  # trailing\nchannels: [conda-forge, 'defaults']\ndependencies:\n"
        "- python=3.10\n- \"numpy >=1.26\"\n- pip:\n  - six==1.16.0\n  - 'a # b'\nvariables:\n  K: \"x: y\"\n"
        "prefix:\n", "e.yml")
    assert doc == {"name": "demo", "channels": ["conda-forge", "defaults"],
                   "dependencies": ["python=3.10", "numpy >=1.26", {"pip": ["six==1.16.0", "a # b"]}],
                   "variables": {"K": "x: y"}, "prefix": None}


@pytest.mark.parametrize("text, needle", [
    ("a: &x 1\n", "anchors"), ("a: *x\n", "aliases"), ("a: !!str 1\n", "tags"), ("a: |\n  x\n", "block scalars"),
    ("a:\n\t- x\n", "tab"), ("a: {b: 1}\n", "flow mappings"), ("a: b\n  c: d\n", "indentation"),
    ("a: 1\na: 2\n", "twice"), ("a: 'x\n", "unterminated"), ("---\na: 1\n---\nb: 2\n", "second YAML document"),
])
def test_yaml_subset_refuses_what_it_does_not_read(text, needle):
    with pytest.raises(yamlish.YamlSubsetError, match=needle) as exc:
        yamlish.loads(text, "e.yml")
    assert str(exc.value).startswith("e.yml:")


def test_init_error_is_an_envgen_error():
    from envgen.errors import EnvgenError

    assert issubclass(InitError, EnvgenError) and issubclass(yamlish.YamlSubsetError, EnvgenError)


def test_help_teaches_with_examples():
    for cmd, words in [("init", ("--date auto", "--pin pykale==", "environment.yml", "requires-python")),
                       ("update", ("[hold]", "--dry-run", "[security]", "examples:"))]:
        proc = run_envgen(cmd, "--help")
        assert proc.returncode == 0 and all(w in proc.stdout for w in words), (cmd, proc.stdout)
    assert "envgen init" in run_envgen("--help").stdout


def test_editable_paths_no_binary_and_a_vcs_commit_in_a_requirements_file(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "pyproject.toml").write_text('[project]\nname = "lib"\nversion = "1"\n')
    (tmp_path / "requirements.txt").write_text(
        f"-e ./lib\n--no-binary crcmod\ncrcmod==1.7\n-e git+https://github.com/o/proj.git@{COMMIT}#egg=proj&subdirectory=py\n")
    init(str(tmp_path / "requirements.txt"), "--date", "2025-01-01")
    spec = load_spec(tmp_path / "envgen.toml")
    assert spec.requirements == ["crcmod==1.7", f"proj @ git+https://github.com/o/proj.git@{COMMIT}#subdirectory=py"]
    assert [lp.path for lp in spec.local] == ["lib"] and spec.from_source == ["crcmod"]
