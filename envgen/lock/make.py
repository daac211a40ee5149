"""``envgen lock``: spec -> ``pylock.<name>.toml``.

PyPI (uv) and Debian (apt) resolve concurrently; their results are merged
into one :class:`~envgen.lock.pylock.Lock`, serialised deterministically and
written atomically.  Nothing is written when anything fails.

The uv runs start first, before the rest of this stage is even imported
(:mod:`envgen.lock.resolve`), then the Debian side, then the local projects'
build requirements (their hooks included); all of these overlap the runtime
resolution, which is the longest wait.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .. import __version__
from ..clock import format_utc
from ..distros import PLATFORMS
from ..errors import EnvgenError, LockError, SpecError
from ..spec import Spec
from . import resolve as uvr

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from ..snapshot import vcs as vcs_mod
    from . import pylock

# Debian packages every compiled source build gets (role "build"), besides python3.X-dev
COMPILER_DEBS = ("gcc", "libc6-dev")


@dataclass
class LockResult:
    lock: pylock.Lock
    path: Path
    changed: bool
    warnings: list[str] = field(default_factory=list)


def local_name(path: Path) -> tuple[str, str | None]:
    data = tomllib.loads((path / "pyproject.toml").read_text())
    proj = data.get("project", {})
    if "name" not in proj:
        raise EnvgenError(f"{path}/pyproject.toml: no [project] name")
    version = proj.get("version") if "version" not in proj.get("dynamic", []) else None
    return canonicalize_name(proj["name"]), version


def _artifact(kind: str, d: dict) -> pylock.Artifact:
    from . import pylock

    up = d.get("upload-time")
    if isinstance(up, dt.datetime) and up.tzinfo is None:
        up = up.replace(tzinfo=dt.UTC)
    return pylock.Artifact(
        kind=kind,
        filename=d.get("name") or d["url"].rsplit("/", 1)[-1],
        url=d["url"],
        sha256=d["hashes"]["sha256"],
        size=d.get("size"),
        upload_time=up,
    )


def _convert(uv_lock: dict, spec: Spec, platform: str, locals_: dict[str, tuple[str, str | None]],
             children: dict[str, list[str]], from_source: frozenset[str] = frozenset(),
             tool_of: str | None = None,
             gits: dict[str, GitInput] | None = None) -> tuple[list[pylock.PyPackage], dict[str, str]]:
    """uv's pylock -> the lock's packages, and {name: reason} of those built from their sdist.

    A package keeps the one wheel the target installs; without one (or when the
    spec's ``[build] from-source`` names it) it keeps only its sdist, so that
    any PEP 751 installer builds it from source too.  *tool_of* (build tools)
    says whose build requirement it is: a build tool must have a wheel.
    """
    from . import pylock
    from .tags import best_wheel, supported_tags

    plat = PLATFORMS[platform]
    tags = supported_tags(spec.python, plat.machine, spec.distro.glibc)
    out = []
    reasons: dict[str, str] = {}
    for p in uv_lock.get("packages", []):
        name = canonicalize_name(p["name"])
        if "directory" in p and gits and name in gits:
            g = gits[name]
            out.append(pylock.PyPackage(
                name=name, version=g.version, dependencies=children.get(name, []),
                vcs=pylock.Vcs(type="git", url=g.source.url, commit_id=g.source.commit,
                               requested_revision=g.source.requested_revision, subdirectory=g.source.subdirectory)))
            continue
        if "directory" in p:
            if name not in locals_:
                raise EnvgenError(f"uv returned a local project {name!r} that the spec does not name")
            rel, version = locals_[name]
            out.append(pylock.PyPackage(name=name, version=version, directory=rel,
                                        dependencies=children.get(name, [])))
            continue
        version = p.get("version")
        wheels = [_artifact("wheel", w) for w in p.get("wheels", [])]
        sdist = _artifact("sdist", p["sdist"]) if "sdist" in p else None
        chosen = best_wheel([w.filename for w in wheels], tags)
        wheels = [w for w in wheels if w.filename == chosen]
        if tool_of is not None and not wheels:
            raise LockError(f"{name} {version} ({tool_of}) has no wheel for {platform} CPython {spec.python}; "
                            "build tools are installed from wheels, not built from source")
        if name in from_source:
            if sdist is None:
                raise SpecError(f"{spec.path}: key 'build.from-source': {name} {version} has no sdist to build from")
            wheels = []
            reasons[name] = "from-source"
        elif not wheels:
            if sdist is None:
                raise LockError(f"{name} {version} has no wheel for {platform} CPython {spec.python} and no sdist, "
                                "so it can be neither installed nor built")
            reasons[name] = "no-wheel"
        for a in wheels + ([sdist] if sdist else []):
            if a.upload_time is None:
                raise EnvgenError(f"{a.filename}: the index gave no upload time,"
                                  " so the snapshot date cannot be enforced")
            if a.upload_time > spec.snapshot_date:
                raise EnvgenError(f"{a.filename} was uploaded {format_utc(a.upload_time)}, after the snapshot date")
        out.append(pylock.PyPackage(
            name=name, version=version, wheels=wheels, sdist=sdist, marker=p.get("marker"),
            index=uvr.index_url(), dependencies=children.get(name, []),
        ))
    return out, reasons


def debian_build_packages(spec: Spec, compile_: bool) -> list[str]:
    """Debian packages a source build needs: a C toolchain and the Python headers, plus ``[os] build-packages``."""
    names = set(spec.os_build_packages)
    if compile_:
        names |= set(COMPILER_DEBS) | {f"python{spec.python}-dev"}
    return sorted(names)


def build_lock(spec: Spec, progress=None, idle: Callable[[], None] | None = None,
               early: uvr.EarlyRun | None = None, store=None) -> tuple[pylock.Lock, list[str]]:
    """The lock of *spec* and its warnings.

    *idle* is called once while uv resolves (work that needs no result);
    *early* is :func:`~envgen.lock.resolve.start_early` of the spec's file,
    adopted only if it is exactly the run this lock needs.  What locking
    fetches (git packs, sdists, build tools and .debs) goes into *store*
    (None: the default store).
    """
    now = dt.datetime.now(dt.UTC)
    if spec.snapshot_date > now:
        raise SpecError(
            f"{spec.path}: key 'snapshot-date': {spec.snapshot_date.iso} is in the future; "
            "a snapshot can only freeze what has been published"
        )
    if len(spec.platforms) != 1:
        raise SpecError(f"{spec.path}: key 'platforms': one platform per spec is supported for now")
    platform = spec.platforms[0]
    say = progress or (lambda msg: None)
    vcs = git_sources(spec, say, store)
    with uvr.UvSession(spec, platform, early) as uv:
        uv.requirement_overrides = {g.index: g.requirement for g in vcs}
        say("resolving PyPI with uv")
        uvr.start(uv)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=3) as pool:
            return _build_lock(spec, platform, uv, pool, say, idle, vcs, store)


@dataclass
class GitInput:
    """A requirement pinned to a git commit, fetched and packed (:mod:`envgen.snapshot.vcs`)."""

    index: int  # in the spec's requirements
    name: str
    version: str | None
    source: vcs_mod.GitSource
    sha256: str  # of the source pack, a store object
    size: int
    pack: Path  # the store object
    tree: Path  # the pack unpacked (cached by its sha256): what uv and the build hook read
    requirement: str  # the spec's requirement, its URL replaced by the tree's (file://)


def git_sources(spec: Spec, say: Callable[[str], None], store=None) -> list[GitInput]:
    """Fetch and pack every git requirement of *spec* into *store* (None: the default store), once per
    commit: the packs are remembered by their id."""
    reqs = spec.vcs_requirements()
    if not reqs:
        return []
    from ..paths import store_dir
    from ..snapshot import srcpack
    from ..snapshot import vcs as vcs_mod
    from ..snapshot.store import Store
    from .buildreq import _cached_tree
    from .resolve import lock_cache

    store = store if store is not None else Store(store_dir(None))
    out = []
    for i, text in reqs:
        req = Requirement(text)
        assert req.url is not None  # vcs_requirements() gives requirements with a URL
        name = canonicalize_name(req.name)
        src = vcs_mod.parse_git_url(req.url, f"{spec.path}: key 'requirements[{i}]'")
        say(f"fetching {name} at {src.describe()}")
        sha, size = vcs_mod.source_pack(store, src, lock_cache() / "vcs")
        pack = store.path_of(sha)

        def fill(tmp: Path, pack: Path = pack, name: str = name) -> None:
            srcpack.unpack(pack, tmp, f"git source of {name}")

        tree = _cached_tree("vcs-trees", sha[:32], fill)
        if not (tree / "pyproject.toml").is_file():
            raise LockError(f"{name} at {src.describe()} has no pyproject.toml; envgen builds a git requirement "
                            "as a local project, from its pyproject.toml [project] table")
        got, version = local_name(tree)
        if got != name:
            raise LockError(f"{spec.path}: key 'requirements[{i}]': {text!r} names {name}, but its pyproject.toml "
                            f"at that commit names {got}")
        req.url = tree.as_uri()
        out.append(GitInput(i, name, version, src, sha, size, pack, tree, str(req)))
    return out


def _build_lock(spec: Spec, platform: str, uv: uvr.UvSession, pool: ThreadPoolExecutor,
                say: Callable[[str], None], idle: Callable[[], None] | None,
                vcs: list[GitInput], store=None) -> tuple[pylock.Lock, list[str]]:
    # imported while uv runs
    from . import debian as deb
    from . import pylock
    from .buildreq import BuildResolution, SourceInput, interpreter_key, resolve_source_builds, start_local

    plat = PLATFORMS[platform]
    warnings: list[str] = []
    locals_: dict[str, tuple[str, str | None]] = {}
    local_inputs: list[SourceInput] = []
    for lp in spec.local:
        name, version = local_name(lp.dir)
        locals_[name] = (lp.path, version)
        local_inputs.append(SourceInput(name=name, version=version, reason="local", directory=lp.dir))
    for g in vcs:
        local_inputs.append(SourceInput(name=g.name, version=g.version, reason="vcs", tree=g.tree, pack=g.pack,
                                        pack_sha256=g.sha256, pack_size=g.size))
    gits = {g.name: g for g in vcs}
    from_source = frozenset(spec.from_source)

    def debian(compile_: bool) -> deb.DebianResolution:
        return deb.resolve_debian(spec.distro, plat.deb_arch, spec.python, spec.os_packages, spec.os_mirror,
                                  spec.snapshot_date, build_packages=debian_build_packages(spec, compile_))

    def convert_tools(uv_lock: dict, tool_of: str) -> list[pylock.PyPackage]:
        return _convert(uv_lock, spec, platform, {}, {}, tool_of=tool_of)[0]

    def source_builds(inputs: list[SourceInput], debs: Callable[[], list[pylock.DebPackage]]) -> BuildResolution:
        return resolve_source_builds(spec, platform, inputs, store, debs, convert_tools, say, uv)

    say("resolving the Debian runtime with apt")
    # [build] from-source means compiling; otherwise only the resolution tells (a package without a wheel)
    fut = pool.submit(debian, bool(from_source))
    first = fut
    # The local projects' build requirements need no resolution, only the Debian interpreter (for the
    # hook): they go alongside uv.  Should the Debian side be resolved again (compilers added), they
    # are redone below unless the interpreter came out the same.
    hook_debs: list[str] = []

    def first_debs() -> list[pylock.DebPackage]:
        debs = first.result().packages
        hook_debs.append(interpreter_key(debs))
        return debs

    if idle is not None:
        idle()
    # The short uv runs start only now, after the runtime set's has begun and envgen's own
    # start-up is done: started all at once they slowed it down (2 cores) and their
    # simultaneous DNS queries got some dropped (a 5 s retry).
    uvr.start_tools(uv)
    for inp in local_inputs:
        where = inp.directory or inp.tree
        assert where is not None  # a local project or a git commit's tree
        start_local(uv, inp.name, where)
    local_fut: Future[BuildResolution] | None = (
        pool.submit(source_builds, local_inputs, first_debs) if local_inputs else None)
    res = uvr.finish(uv)

    children: dict[str, list[str]] = {}
    for child, parents in res.parents.items():
        for parent in parents:
            children.setdefault(parent, []).append(child)
    children = {k: sorted(set(v)) for k, v in children.items()}
    packages, reasons = _convert(res.runtime, spec, platform, locals_, children, from_source, gits=gits)
    resolved = {p.name for p in packages}
    for name in spec.from_source:
        if name not in resolved:
            raise SpecError(f"{spec.path}: key 'build.from-source': {name!r} is not in the resolved environment")
    if any(r != "local" for r in reasons.values()) and not from_source:
        fut = pool.submit(debian, True)  # waits for the first on apt's state lock, then reuses its indices
    final = fut

    inputs = [SourceInput(name=p.name, version=p.version, reason=reasons[p.name], sdist=p.sdist)
              for p in packages if p.name in reasons]
    builds = source_builds(inputs, lambda: final.result().packages)
    debres = fut.result()
    if local_fut is not None:
        local = local_fut.result()
        if hook_debs and interpreter_key(debres.packages) != hook_debs[0]:
            local = source_builds(local_inputs, lambda: debres.packages)
        builds = BuildResolution(sorted(builds.source_builds + local.source_builds, key=lambda b: b.name),
                                 builds.tools + local.tools)

    tools: dict[tuple[str, str | None], pylock.PyPackage] = {}
    for t in convert_tools(res.build, "a base build tool") + builds.tools:
        tools.setdefault((t.name, t.version), t)
    build_tools = sorted(tools.values(), key=pylock.tool_key)
    roots = sorted({canonicalize_name(Requirement(r).name) for r in spec.requirements} | set(locals_))

    for r in debres.releases:
        if r.date > spec.snapshot_date:
            warnings.append(
                f"the Debian {r.suite} index is dated {format_utc(r.date)}, after the snapshot date; "
                "every .deb is still pinned by sha256, but to freeze the OS layer at the snapshot date too, "
                "set [os] mirror = \"https://snapshot.debian.org/archive/{archive}/{snapshot-date}\""
            )
            break

    lock = pylock.Lock(
        name=spec.env_name,
        variant=spec.variant,
        spec=spec.path.name,
        spec_sha256=spec.sha256,
        snapshot_date=spec.snapshot_date,
        python=spec.python,
        platforms=list(spec.platforms),
        envgen_version=__version__,
        uv_version=res.uv_version,
        index=uvr.index_url(),
        roots=roots,
        packages=packages,
        build_tools=build_tools,
        source_builds=builds.source_builds,
        debian=pylock.Debian(
            base=spec.os_base,
            architecture=debres.arch,
            roots=debres.roots,
            build_roots=debres.build_roots,
            releases=debres.releases,
            packages=debres.packages,
        ),
        environments=[
            f"sys_platform == 'linux' and platform_machine == '{plat.machine}' "
            f"and implementation_name == 'cpython' and python_version == '{spec.python}'"
        ],
        requires_python=f"=={spec.python}.*",
    )
    return lock, warnings


def lock_spec(spec: Spec, progress=None, idle: Callable[[], None] | None = None,
              early: uvr.EarlyRun | None = None, store=None) -> LockResult:
    """Lock *spec* into its ``pylock.<name>.toml``; *idle*, *early* and *store* as for :func:`build_lock`."""
    from ..fsutil import atomic_write
    from . import pylock

    path = spec.lock_path
    previous: list[pylock.Lock | None] = [None]

    def read_previous() -> None:
        # The lock on disk, read while uv resolves: when the new one equals it, the file is left
        # alone (and the serialiser, the slowest step after uv, is skipped). Equal models
        # serialise to equal bytes, so the lock stays byte-identical either way.
        if path.is_file():
            try:
                previous[0] = pylock.loads(path.read_text(), path)
            except EnvgenError:
                pass  # unreadable or foreign: rewrite it

    def while_uv_resolves() -> None:
        read_previous()
        if idle is not None:
            idle()

    lock, warnings = build_lock(spec, progress, while_uv_resolves, early, store)
    lock.path = path
    if previous[0] is not None and previous[0] == lock:
        return LockResult(lock, path, False, warnings)
    atomic_write(path, pylock.dumps(lock))
    return LockResult(lock, path, True, warnings)
