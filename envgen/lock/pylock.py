"""Read and write ``pylock.<name>.toml``: a PEP 751 lock with envgen's extras.

The standard part (``lock-version``, ``[[packages]]`` with wheels, sdists,
hashes, upload times and ``dependencies``) is what any PEP 751 installer
reads.  What PEP 751 has no field for lives under ``[tool.envgen]``: the
spec's hash, the snapshot date, the tool versions, the build tools, and the
Debian runtime.  ``tool.envgen.format-version`` versions that table; a reader
refuses a newer one rather than guess.

Every list is sorted and every timestamp derives from the indices, never
from the clock, so re-locking an unchanged spec gives identical bytes.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from .. import formats
from ..clock import SnapshotDate, format_utc, parse_utc
from ..errors import FormatError, LockError

LOCK_VERSION = "1.0"


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


@dataclass
class Artifact:
    """One downloadable file: a wheel, an sdist or a .deb."""

    kind: str  # "wheel" | "sdist" | "deb"
    filename: str
    url: str
    sha256: str
    size: int | None = None
    upload_time: dt.datetime | None = None


@dataclass(frozen=True)
class Vcs:
    """PEP 751's ``[packages.vcs]``: a git source pinned to a commit."""

    type: str  # "git"
    url: str
    commit_id: str
    requested_revision: str | None = None
    subdirectory: str | None = None


@dataclass
class PyPackage:
    name: str
    version: str | None
    wheels: list[Artifact] = field(default_factory=list)
    sdist: Artifact | None = None
    directory: str | None = None  # local project, relative to the lock's directory
    vcs: Vcs | None = None  # a git requirement pinned to a commit (its pack: the source build's source-sha256)
    marker: str | None = None
    index: str | None = None
    dependencies: list[str] = field(default_factory=list)

    @property
    def is_local(self) -> bool:
        return self.directory is not None

    @property
    def from_sdist(self) -> bool:
        """Installed by building its sdist (no wheel is locked for it)."""
        return self.sdist is not None and not self.wheels


@dataclass
class DebRelease:
    archive: str
    suite: str
    uri: str
    date: dt.datetime
    inrelease_sha256: str


@dataclass
class DebPackage:
    name: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    archive: str
    url: str
    snapshot_url: str
    role: str
    depends: list[str] = field(default_factory=list)

    @property
    def artifact(self) -> Artifact:
        return Artifact("deb", Path(self.filename).name, self.url, self.sha256, self.size)


@dataclass
class Debian:
    base: str
    architecture: str
    roots: list[str]
    build_roots: list[str]
    releases: list[DebRelease]
    packages: list[DebPackage]


@dataclass
class SourceBuild:
    """A ``[[packages]]`` entry that is built from source (an sdist, a local directory or a git commit).

    ``requires`` is the isolated build environment of PEP 517: exact pins
    ``name==version`` sorted by name, each a (name, version) of
    :attr:`Lock.build_tools`.  A git commit's (reason ``vcs``) also names its
    source pack, a store object: ``source_sha256`` and ``source_size``.
    """

    name: str
    version: str | None
    reason: str  # "local" | "no-wheel" | "from-source" | "vcs"
    backend: str  # PEP 517 build-backend ("setuptools.build_meta:__legacy__" when the source declares none)
    backend_path: list[str] = field(default_factory=list)  # PEP 517 backend-path, relative to the source root
    requires: list[str] = field(default_factory=list)
    source_sha256: str | None = None  # reason "vcs": the sha256 of the commit's source pack
    source_size: int | None = None

    def pins(self) -> list[tuple[str, str]]:
        """``requires`` as (canonical name, version) pairs."""
        out: list[tuple[str, str]] = []
        for r in self.requires:
            name, _, version = r.partition("==")
            out.append((str(canonicalize_name(name)), version))
        return out


SOURCE_BUILD_REASONS = ("local", "no-wheel", "from-source", "vcs")


def _version_key(version: str | None) -> tuple:
    from packaging.version import InvalidVersion, Version

    if version is None:
        return (0, "")
    try:
        return (1, Version(version), version)
    except InvalidVersion:
        return (2, version)


def tool_key(p: PyPackage) -> tuple:
    """The order of ``build-tools``: by name, then by version."""
    return (p.name, _version_key(p.version))


@dataclass
class Lock:
    name: str
    spec: str
    spec_sha256: str
    snapshot_date: SnapshotDate
    python: str
    platforms: list[str]
    envgen_version: str
    uv_version: str
    index: str
    roots: list[str]
    packages: list[PyPackage]
    build_tools: list[PyPackage]
    debian: Debian
    environments: list[str] = field(default_factory=list)
    requires_python: str = ""
    source_builds: list[SourceBuild] = field(default_factory=list)
    format_version: int = formats.current("envgen-lock")
    path: Path | None = None
    variant: str | None = None  # the spec's [variants.NAME] this lock is of (None: the default env)

    def __post_init__(self) -> None:
        self.snapshot_date = SnapshotDate.parse(self.snapshot_date)  # a plain aware datetime is accepted

    def package(self, name: str) -> PyPackage | None:
        cname = canonicalize_name(name)
        return next((p for p in self.packages if p.name == cname), None)

    def build_tool(self, name: str, version: str | None) -> PyPackage | None:
        """The build tool *name* at *version* (``build_tools`` may hold several versions of one project)."""
        cname = canonicalize_name(name)
        return next((p for p in self.build_tools if p.name == cname and p.version == version), None)

    def source_build(self, name: str) -> SourceBuild | None:
        cname = canonicalize_name(name)
        return next((b for b in self.source_builds if b.name == cname), None)

    def deb(self, name: str) -> DebPackage | None:
        return next((d for d in self.debian.packages if d.name == name), None)


# --------------------------------------------------------------------------- writing


def _dt(value: dt.datetime):
    import tomlkit

    return tomlkit.datetime(format_utc(value))


def _inline(d: dict[str, Any]):
    import tomlkit

    t = tomlkit.inline_table()
    for k, v in d.items():
        if v is not None:
            t[k] = v
    return t


def _artifact_table(a: Artifact) -> Any:
    d: dict[str, Any] = {"name": a.filename, "url": a.url}
    if a.upload_time is not None:
        d["upload-time"] = _dt(a.upload_time)
    if a.size is not None:
        d["size"] = a.size
    d["hashes"] = _inline({"sha256": a.sha256})
    return _inline(d)


def _array(items: list, multiline: bool = True):
    import tomlkit

    arr = tomlkit.array()
    for it in items:
        arr.append(it)
    if multiline and items:
        arr.multiline(True)
    return arr


def _package_table(p: PyPackage):
    import tomlkit

    t = tomlkit.table()
    t["name"] = p.name
    if p.version is not None:
        t["version"] = p.version
    if p.marker:
        t["marker"] = p.marker
    if p.directory is not None:
        t["directory"] = _inline({"path": p.directory})
    if p.vcs is not None:
        v = p.vcs
        t["vcs"] = _inline({"type": v.type, "url": v.url, "requested-revision": v.requested_revision,
                            "commit-id": v.commit_id, "subdirectory": v.subdirectory})
    if p.index:
        t["index"] = p.index
    if p.dependencies:
        t["dependencies"] = _array([_inline({"name": d}) for d in sorted(p.dependencies)])
    if p.sdist is not None:
        t["sdist"] = _artifact_table(p.sdist)
    if p.wheels:
        t["wheels"] = _array([_artifact_table(w) for w in sorted(p.wheels, key=lambda w: w.filename)])
    return t


def dumps(lock: Lock) -> str:
    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment("This file is generated by `envgen lock`; do not edit by hand."))
    doc.add(tomlkit.comment(f"Spec: {lock.spec}   Snapshot date: {lock.snapshot_date.iso}"))
    doc["lock-version"] = LOCK_VERSION
    doc["environments"] = _array(sorted(lock.environments), multiline=False)
    doc["requires-python"] = lock.requires_python
    doc["created-by"] = "envgen"
    aot = tomlkit.aot()
    for p in sorted(lock.packages, key=lambda p: p.name):
        aot.append(_package_table(p))
    doc["packages"] = aot

    env = tomlkit.table()
    env["format-version"] = lock.format_version
    env["name"] = lock.name
    if lock.variant is not None:  # written only for a variant: a default env's lock keeps its bytes
        env["variant"] = lock.variant
    env["spec"] = lock.spec
    env["spec-sha256"] = lock.spec_sha256
    env["snapshot-date"] = _dt(lock.snapshot_date)
    env["python"] = lock.python
    env["platforms"] = _array(sorted(lock.platforms), multiline=False)
    env["envgen-version"] = lock.envgen_version
    env["uv-version"] = lock.uv_version
    env["index"] = lock.index
    env["roots"] = _array(sorted(lock.roots))
    bt = tomlkit.aot()
    for p in sorted(lock.build_tools, key=tool_key):
        bt.append(_package_table(p))
    env["build-tools"] = bt
    sb = tomlkit.aot()
    for b in sorted(lock.source_builds, key=lambda b: b.name):
        t = tomlkit.table()
        t["name"] = b.name
        if b.version is not None:
            t["version"] = b.version
        t["reason"] = b.reason
        t["backend"] = b.backend
        t["backend-path"] = _array(list(b.backend_path), multiline=False)
        t["requires"] = _array(sorted(b.requires, key=lambda r: canonicalize_name(r.partition("==")[0])))
        if b.source_sha256 is not None:
            t["source-sha256"] = b.source_sha256
        if b.source_size is not None:
            t["source-size"] = b.source_size
        sb.append(t)
    env["source-builds"] = sb

    deb = tomlkit.table()
    d = lock.debian
    deb["base"] = d.base
    deb["architecture"] = d.architecture
    deb["roots"] = _array(sorted(d.roots), multiline=False)
    deb["build-roots"] = _array(sorted(d.build_roots), multiline=False)
    rels = tomlkit.aot()
    for r in sorted(d.releases, key=lambda r: (r.archive, r.suite)):
        t = tomlkit.table()
        t["archive"] = r.archive
        t["suite"] = r.suite
        t["uri"] = r.uri
        t["date"] = _dt(r.date)
        t["inrelease-sha256"] = r.inrelease_sha256
        rels.append(t)
    deb["releases"] = rels
    pkgs = tomlkit.aot()
    for dp in sorted(d.packages, key=lambda dp: dp.name):
        t = tomlkit.table()
        t["name"] = dp.name
        t["version"] = dp.version
        t["architecture"] = dp.architecture
        t["role"] = dp.role
        t["filename"] = dp.filename
        t["size"] = dp.size
        t["sha256"] = dp.sha256
        t["archive"] = dp.archive
        t["url"] = dp.url
        t["snapshot-url"] = dp.snapshot_url
        t["depends"] = _array(sorted(dp.depends), multiline=False)
        pkgs.append(t)
    deb["packages"] = pkgs
    env["debian"] = deb

    tool = tomlkit.table(is_super_table=True)
    tool["envgen"] = env
    doc["tool"] = tool
    return tomlkit.dumps(doc)


# --------------------------------------------------------------------------- reading


class _Reader:
    def __init__(self, path: Path):
        self.path = path

    def bad(self, where: str, what: str) -> LockError:
        return LockError(f"{self.path}: {where}: {what}", hint="re-create it with `envgen lock SPEC`")

    def artifact(self, kind: str, d: dict, where: str) -> Artifact:
        try:
            sha = d["hashes"]["sha256"]
            url = d["url"]
        except (KeyError, TypeError):
            raise self.bad(where, "an artifact needs url and hashes.sha256") from None
        name = d.get("name") or url.rsplit("/", 1)[-1]
        up = d.get("upload-time")
        return Artifact(kind, name, url, sha, d.get("size"),
                        self.time(up, f"{where}.upload-time") if up is not None else None)

    def time(self, value: Any, where: str) -> dt.datetime:
        t = parse_utc(value)
        if t is None:
            raise self.bad(where, f"expected an RFC 3339 UTC time, got {value!r}")
        return t

    def snapshot_date(self, value: Any) -> SnapshotDate:
        try:
            return SnapshotDate.parse(value)
        except ValueError:
            raise self.bad("tool.envgen.snapshot-date", f"expected an RFC 3339 UTC time, got {value!r}") from None

    def source_build(self, d: dict, where: str) -> SourceBuild:
        try:
            reason = d["reason"]
            b = SourceBuild(
                name=canonicalize_name(d["name"]), version=d.get("version"), reason=reason,
                backend=d["backend"], backend_path=[str(x) for x in d.get("backend-path", [])],
                requires=[str(x) for x in d.get("requires", [])],
                source_sha256=d.get("source-sha256"), source_size=d.get("source-size"),
            )
        except (KeyError, TypeError):
            raise self.bad(where, "a source build needs name, reason and backend") from None
        if reason not in SOURCE_BUILD_REASONS:
            raise self.bad(where, f"reason: expected one of {', '.join(SOURCE_BUILD_REASONS)}, got {reason!r}")
        if reason == "vcs" and not _is_sha256(b.source_sha256):
            raise self.bad(where, f"source-sha256: a git source build names its source pack by sha256, "
                                  f"got {b.source_sha256!r}")
        for r in b.requires:
            name, sep, version = r.partition("==")
            if not sep or not name or not version:
                raise self.bad(where, f"requires: expected exact pins name==version, got {r!r}")
        return b

    def vcs(self, d: Any, where: str) -> Vcs | None:
        if d is None:
            return None
        if not isinstance(d, dict) or d.get("type") != "git" or not isinstance(d.get("url"), str) \
                or not isinstance(d.get("commit-id"), str):
            raise self.bad(where, "vcs: envgen reads git sources with a url and a commit-id")
        return Vcs(type="git", url=d["url"], commit_id=d["commit-id"], requested_revision=d.get("requested-revision"),
                   subdirectory=d.get("subdirectory"))

    def package(self, d: dict, where: str) -> PyPackage:
        if "name" not in d:
            raise self.bad(where, "a package without a name")
        return PyPackage(
            name=canonicalize_name(d["name"]),
            version=d.get("version"),
            wheels=[self.artifact("wheel", w, f"{where}.wheels") for w in d.get("wheels", [])],
            sdist=self.artifact("sdist", d["sdist"], f"{where}.sdist") if "sdist" in d else None,
            directory=d.get("directory", {}).get("path"),
            vcs=self.vcs(d.get("vcs"), f"{where}.vcs"),
            marker=d.get("marker"),
            index=d.get("index"),
            dependencies=[canonicalize_name(x["name"]) for x in d.get("dependencies", [])],
        )


def loads(text: str, path: Path) -> Lock:
    r = _Reader(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"{path}: not a lock (invalid TOML: {exc})") from None
    lv = str(data.get("lock-version", ""))
    if not lv.startswith("1."):
        raise FormatError(f"{path}: lock-version: expected a 1.x PEP 751 lock, got {lv!r}",
                          hint="re-create it with `envgen lock SPEC`")
    env = data.get("tool", {}).get("envgen")
    if not isinstance(env, dict):
        raise FormatError(f"{path}: not an envgen lock (no [tool.envgen] table)",
                          hint="make one with `envgen lock SPEC`")
    fv = formats.check("envgen-lock", env.get("format-version"), str(path))
    try:
        deb = env["debian"]
        debian = Debian(
            base=deb["base"],
            architecture=deb["architecture"],
            roots=list(deb["roots"]),
            build_roots=list(deb.get("build-roots", [])),
            releases=[DebRelease(x["archive"], x["suite"], x["uri"],
                                 r.time(x["date"], f"tool.envgen.debian.releases[{i}].date"), x["inrelease-sha256"])
                      for i, x in enumerate(deb.get("releases", []))],
            packages=[DebPackage(
                name=x["name"], version=x["version"], architecture=x["architecture"],
                filename=x["filename"], size=x["size"], sha256=x["sha256"], archive=x["archive"],
                url=x["url"], snapshot_url=x.get("snapshot-url", ""), role=x.get("role", "runtime"),
                depends=list(x.get("depends", [])),
            ) for x in deb.get("packages", [])],
        )
        return Lock(
            name=env["name"],
            variant=env.get("variant"),
            spec=env["spec"],
            spec_sha256=env["spec-sha256"],
            snapshot_date=r.snapshot_date(env["snapshot-date"]),
            python=env["python"],
            platforms=list(env["platforms"]),
            envgen_version=env.get("envgen-version", ""),
            uv_version=env.get("uv-version", ""),
            index=env.get("index", ""),
            roots=[canonicalize_name(x) for x in env.get("roots", [])],
            packages=[r.package(p, f"packages[{i}]") for i, p in enumerate(data.get("packages", []))],
            build_tools=[r.package(p, f"tool.envgen.build-tools[{i}]")
                         for i, p in enumerate(env.get("build-tools", []))],
            debian=debian,
            environments=list(data.get("environments", [])),
            requires_python=data.get("requires-python", ""),
            # format 1 had no source builds: a missing table is an empty one
            source_builds=[r.source_build(b, f"tool.envgen.source-builds[{i}]")
                           for i, b in enumerate(env.get("source-builds", []))],
            format_version=fv,
            path=path,
        )
    except KeyError as exc:
        raise r.bad("tool.envgen", f"missing key {exc}") from None


def load(path: str | Path) -> Lock:
    path = Path(path)
    if not path.is_file():
        raise LockError(f"{path}: lock file not found", hint="make it with `envgen lock SPEC`")
    return loads(path.read_text(), path)
