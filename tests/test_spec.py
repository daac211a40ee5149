"""Spec validation: every error names the file, the key and what was expected."""

from __future__ import annotations

import datetime as dt

import pytest

from envgen.errors import EnvgenError, FormatError, NewerFormatError, SpecError
from envgen.spec import load_spec, parse_spec
from helpers import REPO, run_envgen

GOOD = """\
name = "demo"
snapshot-date = 2025-05-08T00:00:00Z
python = "3.11"
platforms = ["linux-x86_64"]
requirements = ["six", "packaging>=24"]
"""


def test_abide_spec_loads():
    spec = load_spec(REPO / "specs" / "abide.toml")
    assert spec.name == "abide"
    assert spec.snapshot_date == dt.datetime(2025, 5, 8, tzinfo=dt.UTC)
    assert spec.python == "3.11"
    assert spec.platforms == ["linux-x86_64"]
    assert "scikit-learn==1.6.1" in spec.requirements
    assert [lp.path for lp in spec.local] == ["../pipelines/abide"]
    assert spec.os_base == "debian/bookworm"
    assert spec.command == ["abide-pipeline"]
    assert spec.lock_path.name == "pylock.abide.toml"
    assert len(spec.sha256) == 64


def test_minimal_spec_defaults(write_spec):
    spec = load_spec(write_spec(GOOD))
    assert spec.os_base == "debian/bookworm" and spec.os_packages == []
    assert spec.local == []


@pytest.mark.parametrize(
    "edit, key, expected",
    [
        (("2025-05-08T00:00:00Z", "\"2025-13-40\""), "snapshot-date", "RFC 3339"),
        (("2025-05-08T00:00:00Z", "2025-05-08T00:00:00+02:00"), "snapshot-date", "UTC"),
        (("2025-05-08T00:00:00Z", "2025-05-08"), "snapshot-date", "RFC 3339"),
        (('python = "3.11"', 'python = "3.12"'), "python", "3.11"),
        (('python = "3.11"', "python = 3.11"), "python", "minor version"),
        (('"six"', '"six >>> 1"'), "requirements[0]", "PEP 508"),
        (('"six"', '"six @ https://example.org/six.whl"'), "requirements[0]", "local"),
        (('name = "demo"', 'name = "My.Env"'), "name", "lower-case"),
        (('["linux-x86_64"]', '["windows-arm"]'), "platforms[0]", "linux-x86_64"),
        (('["linux-x86_64"]', '[]'), "platforms", "non-empty list"),
        (('"six"', '"six", "Six"'), "requirements[1]", "each project once"),
        (('"packaging>=24"]', '"packaging>=24"]\n[os]\nbase = "debian/sid"'), "os.base", "debian/bookworm"),
        (('"packaging>=24"]', '"packaging>=24"]\n[os]\npackages = ["ok", "Not_A_Deb"]'),
         "os.packages[1]", "Debian package"),
        (('"packaging>=24"]', '"packaging>=24"]\n[os]\nmirror = "https://x.org/{archive}/{date}"'),
         "os.mirror", "{snapshot-date}"),
        (('"packaging>=24"]', '"packaging>=24"]\n[os]\nmirror = "ftp://x.org/{archive}"'), "os.mirror", "http(s)"),
        (('"packaging>=24"]', '"packaging>=24"]\n[run]\nenv = { A = 1 }'), "run.env", "string values"),
        (('"packaging>=24"]', '"packaging>=24"]\nos = 3'), "os", "a table"),
        (('"packaging>=24"]', '"packaging>=24"]\n[os]\nbuild-packages = ["gfortran", "Not_A_Deb"]'),
         "os.build-packages[1]", "Debian package"),
        (('"packaging>=24"]', '"packaging>=24"]\n[os]\nbuild-packages = "gfortran"'),
         "os.build-packages", "list of Debian package names"),
        (('"packaging>=24"]', '"packaging>=24"]\n[os]\nbuild-packages = ["gfortran", "gfortran"]'),
         "os.build-packages", "no duplicates"),
        (('"packaging>=24"]', '"packaging>=24"]\n[build]\nfrom-source = ["six", "not a name"]'),
         "build.from-source[1]", "PyPI project name"),
        (('"packaging>=24"]', '"packaging>=24"]\n[build]\nfrom-source = ["-six"]'),
         "build.from-source[0]", "PyPI project name"),
        (('"packaging>=24"]', '"packaging>=24"]\n[build]\nfrom-source = ["Six", "six"]'),
         "build.from-source", "no duplicates"),
        (('"packaging>=24"]', '"packaging>=24"]\nbuild = ["six"]'), "build", "a table"),
        (('"six"', '"six @ git+https://github.com/x/six@main"'), "requirements[0]", "40-hex commit"),
        (('"six"', '"six @ git+https://github.com/x/six@0123456"'), "requirements[0]", "40-hex commit"),
        (('"packaging>=24"]', '"packaging>=24"]\nconstraints = ["numpy[extra]<2"]'), "constraints[0]", "no extras"),
        (('"packaging>=24"]', '"packaging>=24"]\nconstraints = ["numpy<2", "NumPy>1"]'), "constraints[1]",
         "each project once"),
        (('"packaging>=24"]', '"packaging>=24"]\nconstraints = ["numpy <<2"]'), "constraints[0]", "PEP 508"),
        (('"packaging>=24"]', '"packaging>=24"]\n[hold]\nNumPy = "1.26.4"'), "hold.NumPy", "'numpy'"),
        (('"packaging>=24"]', '"packaging>=24"]\n[hold]\nnumpy = "latest"'), "hold.numpy", "a version"),
        (('"packaging>=24"]', '"packaging>=24"]\n[hold]\nnumpy = 1'), "hold", "held versions"),
    ],
)
def test_bad_values_name_file_and_key(write_spec, edit, key, expected):
    path = write_spec(GOOD.replace(*edit))
    with pytest.raises(EnvgenError) as exc:
        load_spec(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert f"'{key}'" in msg
    assert expected in msg


def test_build_table_and_build_packages(write_spec):
    spec = load_spec(write_spec(GOOD + '[build]\nfrom-source = ["Six", "zope.interface"]\n'
                                '[os]\nbuild-packages = ["gfortran", "cmake"]\n'))
    assert spec.from_source == ["six", "zope-interface"]  # canonical (PEP 503), sorted
    assert spec.os_build_packages == ["cmake", "gfortran"]
    plain = load_spec(write_spec(GOOD, name="plain"))
    assert plain.from_source == [] and plain.os_build_packages == []


def test_unknown_build_key(write_spec):
    path = write_spec(GOOD + '[build]\nfrom-sources = ["six"]\n')
    with pytest.raises(EnvgenError, match=r"unknown key 'build.from-sources'"):
        load_spec(path)


def test_unknown_key(write_spec):
    path = write_spec(GOOD + 'colour = "blue"\n')
    with pytest.raises(EnvgenError, match=r"unknown key 'colour'"):
        load_spec(path)


def test_unknown_nested_key(write_spec):
    path = write_spec(GOOD + '[os]\nbase = "debian/bookworm"\nflavour = "x"\n')
    with pytest.raises(EnvgenError, match=r"unknown key 'os.flavour'"):
        load_spec(path)


def test_missing_python(write_spec):
    path = write_spec(GOOD.replace('python = "3.11"\n', ""))
    with pytest.raises(EnvgenError, match=r"missing required key 'python'"):
        load_spec(path)


def test_missing_local_project(write_spec):
    path = write_spec(GOOD + 'local = ["../nowhere"]\n')
    with pytest.raises(EnvgenError, match=r"'local\[0\]'.*pyproject.toml"):
        load_spec(path)


def test_invalid_toml(write_spec):
    path = write_spec(GOOD + "requirements = [\n")
    with pytest.raises(EnvgenError, match="invalid TOML"):
        load_spec(path)


def test_newer_format_version_refused(write_spec):
    path = write_spec("format-version = 99\n" + GOOD + 'a-key-from-the-future = 1\n')
    with pytest.raises(NewerFormatError, match=r"spec format 99 needs a newer envgen") as exc:
        load_spec(path)
    assert str(path) in str(exc.value) and "upgrade envgen" in str(exc.value)
    with pytest.raises(FormatError, match=r"format-version \(got 'x'\)"):
        load_spec(write_spec('format-version = "x"\n' + GOOD))


def test_cli_bad_spec_is_one_line_exit_2_and_writes_nothing(write_spec):
    path = write_spec(GOOD.replace("2025-05-08T00:00:00Z", "\"yesterday-ish\""))
    proc = run_envgen("lock", str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "snapshot-date" in lines[0] and "Traceback" not in proc.stderr
    assert not (path.parent / "pylock.demo.toml").exists()
    assert [p.name for p in path.parent.iterdir()] == ["demo.toml"]


def test_cli_future_snapshot_date_refused_before_any_resolution(write_spec):
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = write_spec(GOOD.replace("2025-05-08T00:00:00Z", future))
    proc = run_envgen("lock", str(path))
    assert proc.returncode == 2
    assert "in the future" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (path.parent / "pylock.demo.toml").exists()


def test_cli_missing_spec():
    proc = run_envgen("lock", "no/such/spec.toml")
    assert proc.returncode == 2
    assert "spec file not found" in proc.stderr


def test_help_teaches():
    proc = run_envgen("--help")
    assert proc.returncode == 0
    for word in ("lock", "graph", "why", "diff", "export-requirements", "--json"):
        assert word in proc.stdout
    proc = run_envgen("lock", "--help")
    assert "snapshot date" in proc.stdout and "example" in proc.stdout


def test_slurm_resources(write_spec):
    spec = load_spec(write_spec(GOOD + '[slurm]\ntime = "00:10:00"\ncpus-per-task = 2\n'))
    assert spec.slurm == {"cpus-per-task": "2", "time": "00:10:00"}
    with pytest.raises(EnvgenError, match=r"unknown key 'slurm.gpus'"):
        load_spec(write_spec(GOOD + '[slurm]\ngpus = 1\n'))
    with pytest.raises(EnvgenError, match=r"'slurm.mem'"):
        load_spec(write_spec(GOOD + '[slurm]\nmem = true\n'))


def test_errors_are_spec_errors_on_one_line(write_spec):
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec(GOOD.replace('"six"', '"six >>> 1"')))
    assert "\n" not in str(exc.value)


def test_parse_spec_is_pure_without_base_dir(tmp_path):
    data = (GOOD + 'local = ["../pipelines/x"]\n').encode()
    spec = parse_spec(data, "snapshot:specs/demo.toml")
    assert [(lp.path, lp.abspath) for lp in spec.local] == [("../pipelines/x", None)]
    assert spec.name == "demo" and spec.snapshot_date.compact == "20250508T000000Z"
    with pytest.raises(SpecError, match=r"snapshot:specs/demo.toml: key 'local\[0\]'.*pyproject.toml"):
        parse_spec(data, "snapshot:specs/demo.toml", base_dir=tmp_path / "specs")
    with pytest.raises(SpecError, match=r"key 'local\[0\]': expected a path relative"):
        parse_spec((GOOD + 'local = ["/abs/x"]\n').encode(), "demo.toml")


def test_snapshot_date_is_a_snapshot_date(write_spec):
    spec = load_spec(write_spec(GOOD))
    assert spec.snapshot_date.iso == "2025-05-08T00:00:00Z"
    assert spec.snapshot_epoch == spec.snapshot_date.epoch == 1746662400


def test_mirror_accepts_snapshot_date_placeholder(write_spec):
    mirror = "https://snapshot.debian.org/archive/{archive}/{snapshot-date}"
    spec = load_spec(write_spec(GOOD + f'[os]\nmirror = "{mirror}"\n'))
    assert spec.os_mirror == mirror


def test_constraints_hold_and_a_git_commit(write_spec):
    commit = "0123456789abcdef0123456789abcdef01234567"
    spec = load_spec(write_spec(GOOD.replace('"six"', f'"six @ git+https://github.com/x/six@{commit}"')
                                + 'constraints = ["numpy<2; python_version >= \'3.10\'"]\n'
                                + '[hold]\nzope-interface = "7.2"\nattrs = "25.3.0"\n'))
    assert spec.vcs_requirements() == [(0, f"six @ git+https://github.com/x/six@{commit}")]
    assert spec.hold == {"attrs": "25.3.0", "zope-interface": "7.2"}
    # what uv gets with -c: the constraints, then the holds as exact pins, sorted
    assert spec.resolver_constraints() == ["numpy<2; python_version >= '3.10'", "attrs==25.3.0",
                                           "zope-interface==7.2"]
    assert load_spec(write_spec(GOOD, name="plain")).resolver_constraints() == []
