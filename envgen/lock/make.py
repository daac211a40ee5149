"""``envgen lock``: spec -> ``pylock.<name>.toml``.

PyPI (uv) and Debian (apt) resolve concurrently; their results are merged
into one :class:`~envgen.lock.pylock.Lock`, serialised deterministically and
written atomically.  Nothing is written when anything fails.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .. import __version__
from ..clock import format_utc
from ..distros import PLATFORMS
from ..errors import EnvgenError, SpecError
from ..fsutil import atomic_write
from ..spec import Spec
from . import debian as deb
from . import pylock
from .resolve import index_url, resolve
from .tags import best_wheel, supported_tags


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
             children: dict[str, list[str]], warnings: list[str]) -> list[pylock.PyPackage]:
    plat = PLATFORMS[platform]
    tags = supported_tags(spec.python, plat.machine, spec.distro.glibc)
    out = []
    for p in uv_lock.get("packages", []):
        name = canonicalize_name(p["name"])
        if "directory" in p:
            if name not in locals_:
                raise EnvgenError(f"uv returned a local project {name!r} that the spec does not name")
            rel, version = locals_[name]
            out.append(pylock.PyPackage(name=name, version=version, directory=rel,
                                        dependencies=children.get(name, [])))
            continue
        wheels = [_artifact("wheel", w) for w in p.get("wheels", [])]
        sdist = _artifact("sdist", p["sdist"]) if "sdist" in p else None
        chosen = best_wheel([w.filename for w in wheels], tags)
        wheels = [w for w in wheels if w.filename == chosen]
        if not wheels:
            if sdist is None:
                raise EnvgenError(f"{name} {p.get('version')} has no wheel for {platform} CPython {spec.python}"
                                  " and no sdist")
            warnings.append(f"{name} {p.get('version')} has no wheel for {platform};"
                            " it would have to be built from its sdist")
        for a in wheels + ([sdist] if sdist else []):
            if a.upload_time is None:
                raise EnvgenError(f"{a.filename}: the index gave no upload time,"
                                  " so the snapshot date cannot be enforced")
            if a.upload_time > spec.snapshot_date:
                raise EnvgenError(f"{a.filename} was uploaded {format_utc(a.upload_time)}, after the snapshot date")
        out.append(pylock.PyPackage(
            name=name, version=p.get("version"), wheels=wheels, sdist=sdist, marker=p.get("marker"),
            index=index_url(), dependencies=children.get(name, []),
        ))
    return out


def build_lock(spec: Spec, progress=None) -> tuple[pylock.Lock, list[str]]:
    now = dt.datetime.now(dt.UTC)
    if spec.snapshot_date > now:
        raise SpecError(
            f"{spec.path}: key 'snapshot-date': {spec.snapshot_date.iso} is in the future; "
            "a snapshot can only freeze what has been published"
        )
    if len(spec.platforms) != 1:
        raise SpecError(f"{spec.path}: key 'platforms': one platform per spec is supported for now")
    platform = spec.platforms[0]
    plat = PLATFORMS[platform]
    warnings: list[str] = []
    locals_: dict[str, tuple[str, str | None]] = {}
    for lp in spec.local:
        name, version = local_name(lp.dir)
        locals_[name] = (lp.path, version)

    say = progress or (lambda msg: None)
    with ThreadPoolExecutor(max_workers=1) as pool:
        say("resolving the Debian runtime with apt")
        fut = pool.submit(deb.resolve_debian, spec.distro, plat.deb_arch, spec.python, spec.os_packages, spec.os_mirror,
                          spec.snapshot_date)
        say("resolving PyPI with uv")
        res = resolve(spec, platform)
        debres = fut.result()

    children: dict[str, list[str]] = {}
    for child, parents in res.parents.items():
        for parent in parents:
            children.setdefault(parent, []).append(child)
    children = {k: sorted(set(v)) for k, v in children.items()}
    packages = _convert(res.runtime, spec, platform, locals_, children, warnings)
    build_tools = _convert(res.build, spec, platform, {}, {}, warnings)
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
        name=spec.name,
        spec=spec.path.name,
        spec_sha256=spec.sha256,
        snapshot_date=spec.snapshot_date,
        python=spec.python,
        platforms=list(spec.platforms),
        envgen_version=__version__,
        uv_version=res.uv_version,
        index=index_url(),
        roots=roots,
        packages=packages,
        build_tools=build_tools,
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


def lock_spec(spec: Spec, progress=None) -> LockResult:
    lock, warnings = build_lock(spec, progress)
    path = spec.lock_path
    lock.path = path
    if path.is_file():
        # The same lock as the one on disk: leave the file alone (and skip the
        # serialiser, the slowest step after uv). Equal models serialise to equal
        # bytes, so the lock stays byte-identical either way.
        try:
            if pylock.loads(path.read_text(), path) == lock:
                return LockResult(lock, path, False, warnings)
        except EnvgenError:
            pass  # unreadable or foreign: rewrite it
    atomic_write(path, pylock.dumps(lock))
    return LockResult(lock, path, True, warnings)
