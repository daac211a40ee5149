"""The spec: a short TOML file naming what an environment must contain.

Example (``specs/abide.toml``)::

    name = "abide"
    snapshot-date = 2025-05-08T00:00:00Z
    python = "3.11"
    platforms = ["linux-x86_64"]
    requirements = ["scikit-learn", "nilearn"]
    local = ["../pipelines/abide"]

    [os]
    base = "debian/bookworm"
    packages = []

    [run]
    command = ["abide-pipeline"]

Every validation error names the file, the key and what was expected.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from . import FORMAT_VERSION
from .distros import DISTROS, PLATFORMS
from .errors import EnvgenError

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
DEB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
PY_RE = re.compile(r"^3\.\d{1,2}$")

TOP_KEYS = {
    "format-version", "name", "description", "snapshot-date", "python", "platforms",
    "requirements", "local", "os", "run", "outputs", "slurm",
}
OS_KEYS = {"base", "packages", "mirror"}
RUN_KEYS = {"command", "env", "workdir"}
OUTPUT_KEYS = {"nondeterministic-files", "nondeterministic-columns"}
SLURM_KEYS = {"time", "cpus-per-task", "mem", "partition", "gres", "account", "qos"}


@dataclass(frozen=True)
class LocalProject:
    path: str  # as written in the spec, relative to the spec's directory (POSIX)
    abspath: Path


@dataclass
class Spec:
    path: Path
    sha256: str
    name: str
    snapshot_date: dt.datetime
    python: str
    platforms: list[str]
    requirements: list[str]
    local: list[LocalProject]
    os_base: str
    os_packages: list[str]
    os_mirror: str | None
    command: list[str]
    run_env: dict[str, str]
    workdir: str | None
    description: str = ""
    nondeterministic_files: list[str] = field(default_factory=list)
    nondeterministic_columns: dict[str, list[str]] = field(default_factory=dict)
    slurm: dict[str, str] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def lock_path(self) -> Path:
        return self.dir / f"pylock.{self.name}.toml"

    @property
    def distro(self):
        return DISTROS[self.os_base]

    @property
    def snapshot_epoch(self) -> int:
        return int(self.snapshot_date.timestamp())


def format_date(d: dt.datetime) -> str:
    """RFC 3339 UTC with a Z, seconds precision."""
    return d.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_date(value: Any) -> dt.datetime | None:
    """An aware UTC datetime from a TOML datetime or an RFC 3339 string, else None."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return None
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        return None
    if value.utcoffset() != dt.timedelta(0):
        return None
    return value.astimezone(dt.timezone.utc).replace(microsecond=0)


class _Checker:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, expected: str, got: Any = None) -> EnvgenError:
        msg = f"{self.path}: key '{key}': expected {expected}"
        if got is not None:
            msg += f", got {got!r}"
        return EnvgenError(msg)

    def unknown(self, table: dict, allowed: set[str], prefix: str = "") -> None:
        for key in sorted(table):
            if key not in allowed:
                where = f"{prefix}{key}"
                raise EnvgenError(
                    f"{self.path}: unknown key '{where}'; allowed here: {', '.join(sorted(allowed))}"
                )

    def string(self, table: dict, key: str, prefix: str = "", required: bool = True) -> str | None:
        if key not in table:
            if required:
                raise EnvgenError(f"{self.path}: missing required key '{prefix}{key}'")
            return None
        value = table[key]
        if not isinstance(value, str) or not value:
            raise self.fail(prefix + key, "a non-empty string", value)
        return value

    def strlist(self, table: dict, key: str, prefix: str = "", default=None) -> list[str]:
        if key not in table:
            if default is None:
                raise EnvgenError(f"{self.path}: missing required key '{prefix}{key}'")
            return list(default)
        value = table[key]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(prefix + key, "a list of non-empty strings", value)
        return list(value)


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file."""
    path = Path(path)
    shown = path
    if not path.is_file():
        raise EnvgenError(f"{shown}: spec file not found")
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise EnvgenError(f"{shown}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise EnvgenError(f"{shown}: invalid TOML: {exc}") from None
    c = _Checker(shown)
    c.unknown(data, TOP_KEYS)

    fv = data.get("format-version", FORMAT_VERSION)
    if not isinstance(fv, int) or isinstance(fv, bool) or fv < 1:
        raise c.fail("format-version", "a positive integer", fv)
    if fv > FORMAT_VERSION:
        raise EnvgenError(
            f"{shown}: format-version {fv} is newer than this envgen understands "
            f"(it reads up to {FORMAT_VERSION})",
            hint="upgrade envgen",
        )

    name = c.string(data, "name")
    if not NAME_RE.match(name):
        raise c.fail("name", "lower-case letters, digits and '-' (no dots), like 'abide'", name)

    if "snapshot-date" not in data:
        raise EnvgenError(f"{shown}: missing required key 'snapshot-date' (an RFC 3339 UTC time such as 2025-05-08T00:00:00Z)")
    date = parse_date(data["snapshot-date"])
    if date is None:
        raise c.fail("snapshot-date", "an RFC 3339 UTC time such as 2025-05-08T00:00:00Z", data["snapshot-date"])

    if "python" not in data:
        raise EnvgenError(f"{shown}: missing required key 'python' (the Python minor version, such as \"3.11\")")
    python = data["python"]
    if not isinstance(python, str) or not PY_RE.match(python):
        raise c.fail("python", 'a Python minor version string such as "3.11"', python)

    platforms = c.strlist(data, "platforms", default=["linux-x86_64"])
    if not platforms:
        raise c.fail("platforms", "at least one platform")
    for p in platforms:
        if p not in PLATFORMS:
            raise c.fail("platforms", f"one of {', '.join(sorted(PLATFORMS))}", p)
    if len(set(platforms)) != len(platforms):
        raise c.fail("platforms", "no duplicates", platforms)

    requirements = c.strlist(data, "requirements", default=[])
    seen: dict[str, str] = {}
    for i, r in enumerate(requirements):
        try:
            req = Requirement(r)
        except InvalidRequirement as exc:
            raise c.fail(f"requirements[{i}]", f"a PEP 508 requirement ({exc})", r) from None
        if req.url:
            raise c.fail(f"requirements[{i}]", "a PyPI requirement; put local projects under 'local'", r)
        cname = canonicalize_name(req.name)
        if cname in seen:
            raise c.fail(f"requirements[{i}]", f"each project once ({req.name} already given as {seen[cname]!r})", r)
        seen[cname] = r

    local: list[LocalProject] = []
    for i, lp in enumerate(c.strlist(data, "local", default=[])):
        if Path(lp).is_absolute():
            raise c.fail(f"local[{i}]", "a path relative to the spec's directory", lp)
        ap = (path.parent / lp).resolve()
        if not (ap / "pyproject.toml").is_file():
            raise c.fail(f"local[{i}]", "a directory holding a pyproject.toml", lp)
        local.append(LocalProject(Path(lp).as_posix(), ap))
    if not requirements and not local:
        raise EnvgenError(f"{shown}: nothing to install: give 'requirements' or 'local'")

    os_table = data.get("os", {})
    if not isinstance(os_table, dict):
        raise c.fail("os", "a table")
    c.unknown(os_table, OS_KEYS, "os.")
    base = os_table.get("base", "debian/bookworm")
    if base not in DISTROS:
        raise c.fail("os.base", f"one of {', '.join(sorted(DISTROS))}", base)
    distro = DISTROS[base]
    if python != distro.python:
        raise c.fail("python", f'"{distro.python}", the Python that {base} ships (the env runs on its interpreter)', python)
    os_packages = c.strlist(os_table, "packages", "os.", default=[])
    for i, p in enumerate(os_packages):
        if not DEB_NAME_RE.match(p):
            raise c.fail(f"os.packages[{i}]", "a Debian package name", p)
    mirror = c.string(os_table, "mirror", "os.", required=False)
    if mirror is not None and (not re.match(r"^https?://", mirror) or "{archive}" not in mirror):
        raise c.fail(
            "os.mirror",
            "an http(s) URL template with {archive}, such as "
            "'https://snapshot.debian.org/archive/{archive}/20250508T000000Z'",
            mirror,
        )

    run = data.get("run", {})
    if not isinstance(run, dict):
        raise c.fail("run", "a table")
    c.unknown(run, RUN_KEYS, "run.")
    command = c.strlist(run, "command", "run.", default=["python3"])
    if not command:
        raise c.fail("run.command", "a non-empty list of strings")
    env = run.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise c.fail("run.env", "a table of string values", env)
    workdir = c.string(run, "workdir", "run.", required=False)

    outputs = data.get("outputs", {})
    if not isinstance(outputs, dict):
        raise c.fail("outputs", "a table")
    c.unknown(outputs, OUTPUT_KEYS, "outputs.")
    nd_files = c.strlist(outputs, "nondeterministic-files", "outputs.", default=[])
    nd_cols_raw = outputs.get("nondeterministic-columns", {})
    if not isinstance(nd_cols_raw, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in nd_cols_raw.values()
    ):
        raise c.fail("outputs.nondeterministic-columns", 'a table like { "results.csv" = ["*_time"] }', nd_cols_raw)

    slurm = data.get("slurm", {})
    if not isinstance(slurm, dict):
        raise c.fail("slurm", "a table of sbatch resources, like { time = \"00:30:00\", cpus-per-task = 2 }")
    c.unknown(slurm, SLURM_KEYS, "slurm.")
    for k, v in slurm.items():
        if not isinstance(v, (str, int)) or isinstance(v, bool) or str(v) == "":
            raise c.fail(f"slurm.{k}", "a string or an integer", v)

    description = data.get("description", "")
    if not isinstance(description, str):
        raise c.fail("description", "a string", description)

    return Spec(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        name=name,
        description=description,
        snapshot_date=date,
        python=python,
        platforms=platforms,
        requirements=requirements,
        local=local,
        os_base=base,
        os_packages=os_packages,
        os_mirror=mirror,
        command=command,
        run_env=dict(sorted(env.items())),
        workdir=workdir,
        nondeterministic_files=nd_files,
        nondeterministic_columns={k: list(v) for k, v in sorted(nd_cols_raw.items())},
        slurm={k: str(v) for k, v in sorted(slurm.items())},
    )
