"""The builder contract: a snapshot id in, an environment tree and its digest out.

Every builder implements :class:`Builder` and is reached through
:func:`get_builder`; ``envgen build``, ``export``, ``verify`` and the runtimes
call builders only this way.  A builder reads nothing but the store: the
snapshot manifest named by the id, the lock stored in it, and the objects it
lists (:class:`BuildInputs`).  It never re-runs the snapshot stage, never
reads the spec file or the user's checkout, and never touches the network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from packaging.utils import canonicalize_name

from ..errors import BuildError, StoreError
from ..fsutil import canonical_json
from ..lock import pylock
from ..snapshot import Store, load_root

Note = Callable[[str], None]


def quiet(msg: str) -> None:
    """A *note* callback that says nothing."""


@dataclass
class BuildResult:
    builder: str
    key: str
    digest: str
    rootfs: Path
    snapshot_id: str
    cached: bool
    network_isolated: bool
    seconds: float
    files: int = 0
    size: int = 0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step, for a fresh build
    units: dict = field(default_factory=dict)  # install units made and reused, for a fresh build from units

    def as_dict(self) -> dict:
        return {
            "builder": self.builder, "key": self.key, "tree_digest": self.digest, "path": str(self.rootfs),
            "snapshot_id": self.snapshot_id, "cached": self.cached, "network_isolated": self.network_isolated,
            "seconds": round(self.seconds, 3), "files": self.files, "bytes": self.size,
            **({"phases": self.phases} if self.phases else {}),
            **({"units": self.units} if self.units else {}),
        }


@dataclass
class BuildInputs:
    """What a build may read, all of it from the store by snapshot id."""

    store: Store
    snapshot_id: str
    manifest: dict
    lock: pylock.Lock
    lock_bytes: bytes
    spec_bytes: bytes | None

    @classmethod
    def load(cls, store: Store, snapshot_id: str) -> BuildInputs:
        manifest = load_root(store, snapshot_id)
        lock_obj = _one(manifest, "lock", snapshot_id)
        lock_bytes = store.read_verified(lock_obj["sha256"], lock_obj["name"])
        lock = pylock.loads(lock_bytes.decode(), Path(lock_obj["name"]))
        spec_obj = next((o for o in manifest["objects"] if o["role"] == "spec"), None)
        spec_bytes = store.read_verified(spec_obj["sha256"], spec_obj["name"]) if spec_obj else None
        inputs = cls(store, snapshot_id, manifest, lock, lock_bytes, spec_bytes)
        inputs.check_objects()
        return inputs

    @property
    def platform(self) -> str:
        return self.lock.platforms[0]

    @property
    def epoch(self) -> int:
        return self.lock.snapshot_date.epoch

    def objects(self, *roles: str) -> list[dict]:
        return [o for o in self.manifest["objects"] if o["role"] in roles]

    def check_objects(self) -> None:
        """Fail (offline, one line) if any object the build needs is absent from the store."""
        built = {p.sdist.sha256 for p in self.lock.packages if p.from_sdist and p.sdist is not None}
        missing = [o for o in self.manifest["objects"] if not self.store.has(o["sha256"])
                   and (o["role"] not in ("sdist", "build-sdist") or o["sha256"] in built)]
        if missing:
            names = ", ".join(o["name"] for o in missing[:3]) + (f" and {len(missing) - 3} more"
                                                                 if len(missing) > 3 else "")
            raise StoreError(f"{len(missing)} store objects of snapshot {self.snapshot_id[:16]}… missing: {names}",
                             hint="run `envgen snapshot SPEC` or `envgen restore BUNDLE` first")

    def local_sources(self) -> list[tuple[str, dict]]:
        """(project name, its local-source object) for each local project of the lock."""
        objs = {o["name"]: o for o in self.objects("local-source")}
        out = []
        for p in self.lock.packages:
            if p.is_local:
                if p.name not in objs:
                    raise StoreError(f"snapshot {self.snapshot_id[:16]}… has no source for local project {p.name}",
                                     hint="run `envgen snapshot SPEC` again")
                out.append((p.name, objs[p.name]))
        return out

    def git_source(self, name: str, sha256: str | None) -> str:
        """The sha256 of git package *name*'s source pack, which the snapshot must list (role ``vcs-source``)."""
        if not any(o["name"] == name and o["sha256"] == sha256 for o in self.objects("vcs-source")):
            raise StoreError(f"snapshot {self.snapshot_id[:16]}… has no source pack for git package {name}",
                             hint="run `envgen snapshot SPEC` again")
        assert sha256 is not None
        return sha256

    def tool_wheel(self, name: str) -> pylock.Artifact:
        """The pinned wheel of base build tool *name* (installer, pyproject-hooks, …)."""
        for p in self.lock.build_tools:
            if p.name == name and p.wheels:
                return p.wheels[0]
        raise BuildError(f"the lock pins no {name} build tool, which this envgen builds with",
                         hint="re-lock the spec with this envgen (`envgen lock SPEC`)")

    def sources_to_build(self) -> list[SourceToBuild]:
        """Every source the lock builds into a wheel (local projects, sdists), in name order."""
        by_name = {p.name: p for p in self.lock.packages}
        local = {name: o for name, o in self.local_sources()}
        out = []
        for sb in self.lock.source_builds or self._legacy_source_builds():
            if sb.name in local:
                obj = local[sb.name]
                sha, fname = obj["sha256"], obj["name"] + ".tar"
            elif getattr(sb, "reason", None) == "vcs":
                sha, fname = self.git_source(sb.name, sb.source_sha256), f"{sb.name}.tar"
            else:
                pkg = by_name.get(sb.name)
                if pkg is None or pkg.sdist is None:
                    raise BuildError(f"the lock builds {sb.name} from source but pins no sdist of it",
                                     hint="the lock is inconsistent; re-lock the spec (`envgen lock SPEC`)")
                sha, fname = pkg.sdist.sha256, pkg.sdist.filename
            reqs = []
            for pin in sb.requires:
                tname, _, tver = pin.partition("==")
                tool = self.lock.build_tool(tname, tver)
                if tool is None or not tool.wheels:
                    raise BuildError(f"{sb.name}: build requirement {pin} is not a pinned build tool of the lock",
                                     hint="the lock is inconsistent; re-lock the spec (`envgen lock SPEC`)")
                reqs.append((tool.wheels[0].filename, tool.wheels[0].sha256))
            out.append(SourceToBuild(sb.name, sha, fname, sb.backend, tuple(sb.backend_path), tuple(sorted(reqs))))
        return sorted(out, key=lambda s: s.name)

    def _legacy_source_builds(self) -> list:
        """Locks without ``source-builds`` (format 1): each local project with its backend from its pyproject."""
        import io
        import tarfile
        import tomllib
        from types import SimpleNamespace

        from packaging.requirements import Requirement

        out = []
        for name, obj in self.local_sources():
            data = self.store.read_verified(obj["sha256"], f"local project {name}")
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
                member = tf.extractfile("pyproject.toml")
                bs = tomllib.loads(member.read().decode()).get("build-system", {}) if member else {}
            wanted = {canonicalize_name(Requirement(r).name) for r in bs.get("requires", [])}
            pins = sorted(f"{p.name}=={p.version}" for p in self.lock.build_tools if p.name in wanted)
            out.append(SimpleNamespace(name=name, backend=bs.get("build-backend", "setuptools.build_meta:__legacy__"),
                                       backend_path=list(bs.get("backend-path", [])), requires=pins))
        return out

    def run_command(self) -> list[str]:
        """The spec's [run] command (for launchers that builders make), or python3."""
        if self.spec_bytes is None:
            return ["python3"]
        from ..spec import parse_spec

        return list(parse_spec(self.spec_bytes, "spec of snapshot " + self.snapshot_id[:16]).command)

    def python_full_version(self) -> str:
        """The upstream version of the lock's Debian interpreter (``3.11.2``), for pyvenv.cfg."""
        deb = self.lock.deb(f"python{self.lock.python}")
        if deb is None:
            raise BuildError(f"the lock has no python{self.lock.python} .deb; re-lock the spec")
        return deb.version.split(":")[-1].split("-")[0]


@dataclass(frozen=True)
class SourceToBuild:
    """One source a build turns into a wheel, with everything that wheel is a function of."""

    name: str
    source_sha256: str        # the local-source tar or the sdist, a store object
    source_name: str          # its file name (``.tar``, ``.tar.gz`` or ``.zip``)
    backend: str
    backend_path: tuple[str, ...]
    requires: tuple[tuple[str, str], ...]  # (wheel file name, sha256) of each pinned build tool

    def key(self, python: str, root: list[str], assembler: str) -> str:
        """The cache key of the built wheel: source, tools, build root .debs, interpreter, assembler."""
        return hashlib.sha256(canonical_json({
            "source": self.source_sha256, "backend": self.backend, "backend-path": list(self.backend_path),
            "requires": [sha for _, sha in self.requires], "root": sorted(root), "python": python,
            "assembler": assembler})).hexdigest()


def _one(manifest: dict, role: str, sid: str) -> dict:
    objs = [o for o in manifest["objects"] if o["role"] == role]
    if len(objs) != 1:
        raise StoreError(f"snapshot {sid[:16]}… has {len(objs)} objects of role {role}, expected one")
    return objs[0]


def build_key(snapshot_id: str, platform: str, builder: str, version: int) -> str:
    """The input key of a build: what the tree is a function of."""
    return hashlib.sha256(canonical_json(
        {"builder": builder, "builder-version": version, "platform": platform, "snapshot": snapshot_id})).hexdigest()


class Builder(Protocol):
    """Turns a snapshot into an environment tree (the shared layout of :mod:`envgen.layout`)."""

    name: str
    version: int  # bumped when the recipe changes what a build produces

    def build(self, store: Store, snapshot_id: str, *, force: bool = False, note: Note = quiet) -> BuildResult:
        """Build (or find already built) the tree of *snapshot_id*; *force* rebuilds to prove it."""
        ...

    def cached(self, store: Store, snapshot_id: str) -> BuildResult | None:
        """The tree of *snapshot_id* if it is already built, without building anything."""
        ...


def _embedded() -> Builder:
    from .embedded import BUILDER

    return BUILDER


def _nix() -> Builder:
    from .nix import BUILDER

    return BUILDER


# name -> loader of the builder object (imported on first use: the Nix module is not needed to run)
BUILDERS: dict[str, Callable[[], Builder]] = {"embedded": _embedded, "nix": _nix}


def get_builder(name: str) -> Builder:
    if name not in BUILDERS:
        raise BuildError(f"unknown builder {name!r}; choose one of {', '.join(BUILDERS)}")
    return BUILDERS[name]()
