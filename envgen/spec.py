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
    mirror = "https://snapshot.debian.org/archive/{archive}/{snapshot-date}"

    [run]
    command = ["abide-pipeline"]

The file's shape is the msgspec schema :class:`SpecFile`; what a schema
cannot say (the Python must be the OS base's, requirements parse as PEP 508,
each project once, local projects hold a pyproject.toml, the mirror template's
placeholders) is one small ``_check_*`` function each.  Every error is a
:class:`~envgen.errors.SpecError` of one line naming the file, the key and
what was expected.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import formats
from .clock import SnapshotDate
from .distros import DISTROS, PLATFORMS, Distro
from .errors import SpecError
from .schema import convert

NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
DEB_NAME_PATTERN = r"^[a-z0-9][a-z0-9+.-]+$"
# A PyPI project name (PEP 508 / PEP 503: letters, digits, '.', '_', '-'; alphanumeric at both ends)
PY_NAME_PATTERN = r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$"
PYTHON_PATTERN = r"^3\.\d{1,2}$"
# What `[os] mirror` may contain: {archive} (required) and {snapshot-date}
# (snapshot.debian.org's 20250508T000000Z form of the spec's snapshot date).
MIRROR_PLACEHOLDERS = ("archive", "snapshot-date")
MIRROR_EXPECTED = (
    "an http(s) URL template with {archive} and optionally {snapshot-date}, such as "
    "'https://snapshot.debian.org/archive/{archive}/{snapshot-date}'"
)
SNAPSHOT_DATE_EXPECTED = "an RFC 3339 UTC time such as 2025-05-08T00:00:00Z"


# Field types: each names what it expects, in the words an error shows after "expected".
NonEmpty = Annotated[str, Meta(min_length=1, description="a non-empty string")]
if TYPE_CHECKING:  # a Literal built from the tables is beyond a static checker; both decode to str
    PlatformName = str
    DistroName = str
else:
    PlatformName = Annotated[Literal[tuple(sorted(PLATFORMS))],
                             Meta(description=f"one of {', '.join(sorted(PLATFORMS))}")]
    DistroName = Annotated[Literal[tuple(sorted(DISTROS))], Meta(description=f"one of {', '.join(sorted(DISTROS))}")]
DebName = Annotated[str, Meta(pattern=DEB_NAME_PATTERN, description="a Debian package name")]
PyName = Annotated[str, Meta(pattern=PY_NAME_PATTERN, description="a PyPI project name")]
MirrorTemplate = Annotated[str, Meta(pattern=r"^https?://\S+$", description=MIRROR_EXPECTED)]
SlurmValue = Annotated[Annotated[str, Meta(min_length=1)] | int | None,
                       Meta(description="a non-empty string or an integer")]
Table = Meta(description="a table")


class _Table(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="kebab"):
    """A TOML table: kebab-case keys, unknown keys refused."""


class OsTable(_Table, kw_only=True):
    base: DistroName = "debian/bookworm"
    packages: Annotated[list[DebName], Meta(description="a list of Debian package names")] = []
    mirror: MirrorTemplate | None = None
    build_packages: Annotated[list[DebName], Meta(description="a list of Debian package names")] = []


class BuildTable(_Table, kw_only=True):
    """How packages are built: which are built from their sdist although a wheel exists."""

    from_source: Annotated[list[PyName], Meta(description="a list of PyPI project names")] = []


class RunTable(_Table, kw_only=True):
    command: Annotated[list[NonEmpty], Meta(min_length=1, description="a non-empty list of non-empty strings")] = \
        msgspec.field(default_factory=lambda: ["python3"])
    env: Annotated[dict[str, str], Meta(description="a table of string values")] = {}
    workdir: NonEmpty | None = None


class OutputsTable(_Table, kw_only=True):
    nondeterministic_files: Annotated[list[NonEmpty], Meta(description="a list of file globs")] = []
    nondeterministic_columns: Annotated[
        dict[str, list[str]], Meta(description='a table like { "results.csv" = ["*_time"] }')] = {}


class SlurmTable(_Table, kw_only=True):
    """sbatch resources; each becomes ``#SBATCH --KEY=VALUE``."""

    time: SlurmValue = None
    cpus_per_task: SlurmValue = None
    mem: SlurmValue = None
    partition: SlurmValue = None
    gres: SlurmValue = None
    account: SlurmValue = None
    qos: SlurmValue = None


VARIANT_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$"
VariantName = Annotated[str, Meta(pattern=VARIANT_PATTERN,
                                  description="lower-case letters, digits and '-', like 'cuda12'")]


class VariantTable(_Table, kw_only=True):
    """``[variants.NAME]``: a whole other env of the same spec (e.g. its CUDA build).

    Its requirements and constraints are added to the spec's; one that names a
    project the spec already names replaces it.
    """

    description: Annotated[str, Meta(description="a string")] = ""
    requirements: Annotated[list[NonEmpty], Meta(description="a list of PEP 508 requirement strings")] = []
    constraints: Annotated[list[NonEmpty], Meta(
        description="a list of PEP 508 constraints (a name, a version range, optionally a marker)")] = []


class SpecFile(_Table, kw_only=True):
    """The schema of a spec file, as :func:`tomllib.loads` gives it."""

    format_version: Annotated[int, Meta(ge=1, description="a positive integer")] = formats.current("envgen-spec")
    name: Annotated[str, Meta(pattern=NAME_PATTERN,
                              description="lower-case letters, digits and '-' (no dots), like 'abide'")]
    description: Annotated[str, Meta(description="a string")] = ""
    snapshot_date: Annotated[SnapshotDate, Meta(description=SNAPSHOT_DATE_EXPECTED)]
    python: Annotated[str, Meta(pattern=PYTHON_PATTERN, description='a Python minor version string such as "3.11"')]
    platforms: Annotated[list[PlatformName], Meta(min_length=1, description="a non-empty list of platforms")] = \
        msgspec.field(default_factory=lambda: ["linux-x86_64"])
    requirements: Annotated[list[NonEmpty], Meta(description="a list of PEP 508 requirement strings")] = []
    constraints: Annotated[list[NonEmpty], Meta(
        description="a list of PEP 508 constraints (a name, a version range, optionally a marker)")] = []
    hold: Annotated[dict[str, str], Meta(description='a table of held versions, like { numpy = "1.26.4" }')] = {}
    local: Annotated[list[NonEmpty], Meta(description="a list of paths relative to the spec's directory")] = []
    os: Annotated[OsTable, Table] = msgspec.field(default_factory=OsTable)
    build: Annotated[BuildTable, Table] = msgspec.field(default_factory=BuildTable)
    run: Annotated[RunTable, Table] = msgspec.field(default_factory=RunTable)
    outputs: Annotated[OutputsTable, Table] = msgspec.field(default_factory=OutputsTable)
    slurm: Annotated[SlurmTable, Meta(
        description='a table of sbatch resources, like { time = "00:30:00", cpus-per-task = 2 }')] = \
        msgspec.field(default_factory=SlurmTable)
    variants: Annotated[dict[VariantName, VariantTable], Meta(
        description='a table of variants, like [variants.cuda12] requirements = ["nvidia-cuda-runtime-cu12"]')] = {}


@dataclass(frozen=True)
class Variant:
    """A spec's ``[variants.NAME]``: requirements and constraints added to (or replacing) the spec's."""

    name: str
    description: str = ""
    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LocalProject:
    path: str  # as written in the spec, relative to the spec's directory (POSIX)
    abspath: Path | None  # the directory on disk; None when the spec was parsed without its directory

    @property
    def dir(self) -> Path:
        """The project's directory on disk (only for a spec loaded from its file)."""
        if self.abspath is None:
            raise SpecError(f"local project {self.path}: the spec was read without its directory")
        return self.abspath


@dataclass
class Spec:
    path: Path
    sha256: str
    name: str
    snapshot_date: SnapshotDate
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
    os_build_packages: list[str] = field(default_factory=list)  # [os] build-packages
    from_source: list[str] = field(default_factory=list)  # [build] from-source, canonical names
    constraints: list[str] = field(default_factory=list)  # pip -c: restrict versions, add no package
    hold: dict[str, str] = field(default_factory=dict)  # [hold]: canonical name -> version (envgen update PKG)
    variants: dict[str, Variant] = field(default_factory=dict)  # [variants.NAME], by name
    variant: str | None = None  # the variant this Spec is (None: the default env)

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def env_name(self) -> str:
        """The env's name: the spec's, or ``NAME-VARIANT`` for a variant (image names, records, the lock's name)."""
        return self.name if self.variant is None else f"{self.name}-{self.variant}"

    @property
    def lock_path(self) -> Path:
        if self.variant is not None:
            return self.dir / f"pylock.{self.name}.{self.variant}.toml"
        return self.dir / f"pylock.{self.name}.toml"

    def for_variant(self, name: str | None) -> Spec:
        """The spec of variant *name* (None: the default env): its requirements and constraints merged in."""
        if name is None:
            return self
        if self.variant is not None:
            raise SpecError(f"{self.path}: already the variant {self.variant!r}")
        v = self.variants.get(name)
        if v is None:
            known = ", ".join(sorted(self.variants)) or "none"
            raise SpecError(f"{self.path}: no variant {name!r} (the spec's variants: {known})",
                            hint="declare it as [variants.NAME] in the spec")
        return replace(self, variant=name, requirements=_merge(self.requirements, v.requirements),
                       constraints=_merge(self.constraints, v.constraints))

    @property
    def distro(self) -> Distro:
        return DISTROS[self.os_base]

    @property
    def snapshot_epoch(self) -> int:
        return self.snapshot_date.epoch

    def resolver_constraints(self) -> list[str]:
        """What the resolver gets as constraints (``uv pip compile -c``): ``constraints``, then ``[hold]`` pins."""
        return self.constraints + [f"{name}=={version}" for name, version in sorted(self.hold.items())]

    def vcs_requirements(self) -> list[tuple[int, str]]:
        """(index, text) of each requirement that names a VCS commit rather than an index release."""
        return [(i, r) for i, r in enumerate(self.requirements) if Requirement(r).url]


# --------------------------------------------------------------------------- loading


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file, checking its local projects on disk."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    return parse_spec(path.read_bytes(), str(path), path.parent)


def parse_spec(data: bytes, where: str, base_dir: Path | None = None) -> Spec:
    """Validate the bytes of a spec; *where* names it in errors and becomes :attr:`Spec.path`.

    Pure unless *base_dir* (the spec's directory) is given: only then are the
    local projects looked up on disk (each must hold a pyproject.toml).
    """
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{where}: invalid TOML: {exc}") from None
    # before the schema, so that a newer spec says "upgrade" rather than "unknown key"
    formats.check("envgen-spec", raw.get("format-version"), where, default=formats.current("envgen-spec"))
    _check_variant_tables(where, raw.get("variants"))
    doc = convert(raw, SpecFile, where, SpecError)
    _check_unique(where, "platforms", doc.platforms)
    _check_unique(where, "os.build-packages", doc.os.build_packages)
    _check_unique(where, "build.from-source", [canonicalize_name(n) for n in doc.build.from_source])
    _check_python(where, doc)
    _check_requirements(where, doc.requirements)
    _check_constraints(where, doc.constraints)
    _check_hold(where, doc.hold)
    _check_local_paths(where, doc.local)
    for vname, vt in doc.variants.items():
        _check_requirements(where, vt.requirements, f"variants.{vname}.requirements")
        _check_constraints(where, vt.constraints, f"variants.{vname}.constraints")
        if not vt.requirements and not vt.constraints:
            raise _fail(where, f"variants.{vname}", "some 'requirements' or 'constraints' (else it is the default env)")
    if base_dir is not None:
        _check_local_dirs(where, doc.local, base_dir)
    _check_something_to_install(where, doc)
    if doc.os.mirror is not None:
        _check_mirror(where, doc.os.mirror)
    return Spec(
        path=Path(where),
        sha256=hashlib.sha256(data).hexdigest(),
        name=doc.name,
        description=doc.description,
        snapshot_date=doc.snapshot_date,
        python=doc.python,
        platforms=list(doc.platforms),
        requirements=list(doc.requirements),
        local=[LocalProject(Path(lp).as_posix(), (base_dir / lp).resolve() if base_dir is not None else None)
               for lp in doc.local],
        os_base=doc.os.base,
        os_packages=list(doc.os.packages),
        os_mirror=doc.os.mirror,
        os_build_packages=sorted(doc.os.build_packages),
        from_source=sorted(canonicalize_name(n) for n in doc.build.from_source),
        constraints=list(doc.constraints),
        hold=dict(sorted(doc.hold.items())),
        command=list(doc.run.command),
        run_env=dict(sorted(doc.run.env.items())),
        workdir=doc.run.workdir,
        nondeterministic_files=list(doc.outputs.nondeterministic_files),
        nondeterministic_columns={k: list(v) for k, v in sorted(doc.outputs.nondeterministic_columns.items())},
        slurm=_slurm(doc.slurm),
        variants={n: Variant(n, v.description, list(v.requirements), list(v.constraints))
                  for n, v in sorted(doc.variants.items())},
    )


def _merge(base: list[str], extra: list[str]) -> list[str]:
    """*base* with *extra* added; an entry of *extra* naming a project of *base* takes its place."""
    by_name = {canonicalize_name(Requirement(r).name): r for r in extra}
    out = [by_name.pop(canonicalize_name(Requirement(r).name), r) for r in base]
    return out + [r for r in extra if canonicalize_name(Requirement(r).name) in by_name]


# --------------------------------------------------------------------------- what the schema cannot say


def _fail(where: str, key: str, expected: str, got: Any = None) -> SpecError:
    msg = f"{where}: key '{key}': expected {expected}"
    if got is not None:
        msg += f", got {got!r}"
    return SpecError(msg)


def _check_variant_tables(where: str, variants: Any) -> None:
    """``[variants.NAME]``, before the schema: its errors would not name the variant (a free-form key)."""
    if not isinstance(variants, dict):
        return  # absent, or the schema says what was expected
    allowed = sorted(f.encode_name for f in msgspec.structs.fields(VariantTable))
    for name, table in variants.items():
        if not re.match(VARIANT_PATTERN, name):
            raise _fail(where, f"variants.{name}", "a variant name of lower-case letters, digits and '-', like "
                                                   "[variants.cuda12]")
        if not isinstance(table, dict):
            raise _fail(where, f"variants.{name}", "a table", table)
        for key, value in table.items():
            if key not in allowed:
                raise SpecError(f"{where}: unknown key 'variants.{name}.{key}'; allowed here: {', '.join(allowed)}")
            if key != "description" and (not isinstance(value, list)
                                         or not all(isinstance(r, str) and r for r in value)):
                raise _fail(where, f"variants.{name}.{key}", "a list of PEP 508 strings", value)


def _check_unique(where: str, key: str, values: list[str]) -> None:
    if len(set(values)) != len(values):
        raise _fail(where, key, "no duplicates", values)


def _check_python(where: str, doc: SpecFile) -> None:
    """The env runs on the OS base's interpreter, so its Python is the base's."""
    distro = DISTROS[doc.os.base]
    if doc.python != distro.python:
        raise _fail(where, "python",
                    f'"{distro.python}", the Python that {distro.name} ships (the env runs on its interpreter)',
                    doc.python)


def _pep508(where: str, key: str, text: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]  # packaging adds a caret diagram below
        raise _fail(where, key, f"a PEP 508 requirement ({reason})", text) from None


def _check_requirements(where: str, requirements: list[str], prefix: str = "requirements") -> None:
    """Each a PEP 508 PyPI requirement (no URLs but a git commit), each project once."""
    seen: dict[str, str] = {}
    for i, r in enumerate(requirements):
        key = f"{prefix}[{i}]"
        req = _pep508(where, key, r)
        if req.url and not pinned_vcs_commit(req.url):
            if VCS_URL.match(req.url):
                raise _fail(where, key, f"a VCS requirement pinned to a full 40-hex commit, like "
                                        f"'{req.name} @ git+https://host/repo@<commit>' (a branch or tag moves)", r)
            raise _fail(where, key, "a PyPI requirement; put local projects under 'local'", r)
        cname = canonicalize_name(req.name)
        if cname in seen:
            raise _fail(where, key, f"each project once ({req.name} already given as {seen[cname]!r})", r)
        seen[cname] = r


def _check_constraints(where: str, constraints: list[str], prefix: str = "constraints") -> None:
    """pip's constraints: a name and a version range (and a marker), no extras, no URL; each project once."""
    seen: set[str] = set()
    for i, c in enumerate(constraints):
        key = f"{prefix}[{i}]"
        req = _pep508(where, key, c)
        if req.url or req.extras:
            raise _fail(where, key, "a name and a version range (no extras, no URL)", c)
        cname = canonicalize_name(req.name)
        if cname in seen:
            raise _fail(where, key, f"each project once ({req.name} is constrained twice)", c)
        seen.add(cname)


def _check_hold(where: str, hold: dict[str, str]) -> None:
    for name, version in hold.items():
        if canonicalize_name(name) != name or not re.match(PY_NAME_PATTERN, name):
            raise _fail(where, f"hold.{name}", f"a normalized PyPI project name ({canonicalize_name(name)!r})", name)
        try:
            Version(version)
        except InvalidVersion:
            raise _fail(where, f"hold.{name}", "a version such as \"1.26.4\"", version) from None


# A VCS URL in a requirement (pip's schemes), and the one form of it that cannot move:
# git, with a full commit id after the last '@' of the path.
VCS_URL = re.compile(r"^(git|hg|svn|bzr)\+")
_GIT_COMMIT = re.compile(r"^git\+[a-z]+://[^/#]+/[^#]*@(?P<commit>[0-9a-f]{40})(?:#.*)?$")


def pinned_vcs_commit(url: str) -> str | None:
    """The commit of ``git+SCHEME://HOST/PATH@<40-hex commit>``, else None (not VCS, or a branch/tag/short id)."""
    m = _GIT_COMMIT.match(url)
    return m.group("commit") if m else None


def _check_local_paths(where: str, local: list[str]) -> None:
    for i, lp in enumerate(local):
        if Path(lp).is_absolute():
            raise _fail(where, f"local[{i}]", "a path relative to the spec's directory", lp)
    _check_unique(where, "local", [Path(lp).as_posix() for lp in local])


def _check_local_dirs(where: str, local: list[str], base_dir: Path) -> None:
    for i, lp in enumerate(local):
        if not ((base_dir / lp).resolve() / "pyproject.toml").is_file():
            raise _fail(where, f"local[{i}]", "a directory holding a pyproject.toml", lp)


def _check_something_to_install(where: str, doc: SpecFile) -> None:
    if not doc.requirements and not doc.local:
        raise SpecError(f"{where}: nothing to install: give 'requirements' or 'local'")


def _check_mirror(where: str, mirror: str) -> None:
    """{archive} present; no placeholder but {archive} and {snapshot-date}."""
    names = re.findall(r"\{([^{}]*)\}", mirror)
    if "archive" not in names or any(n not in MIRROR_PLACEHOLDERS for n in names):
        raise _fail(where, "os.mirror", MIRROR_EXPECTED, mirror)


def _slurm(table: SlurmTable) -> dict[str, str]:
    return {f.encode_name: str(getattr(table, f.name)) for f in sorted(msgspec.structs.fields(table),
                                                                       key=lambda f: f.encode_name)
            if getattr(table, f.name) is not None}
