"""The embedded builder: snapshot -> environment tree, under bubblewrap, with no network.

Only store objects go in.  The result is a root filesystem for the target
platform (the shared layout of :mod:`envgen.layout`)::

    /usr, /lib, /lib64, /etc ...   the pinned Debian runtime (data members only)
    /opt/env                       a venv-style prefix on the Debian interpreter
    /.envgen/                      the lock and snapshot manifest it was built from
    /proc /dev /tmp /sys /run /home empty mount points for the runtimes

Steps: unpack the runtime .debs; build every source of the lock (local
projects, sdists) into a wheel, each in a build root (runtime and build
.debs) with its pinned build tools, or take the wheel from the store's cache;
then, with the half-built tree as ``/``, run the shared assembler
(:mod:`envgen.builders.assemble`, the same program the Nix builder runs):
prefix, wheels installed by pypa ``installer``, unchecked-hash bytecode.
Then every mtime is clamped to the snapshot date, the tree digest is taken,
and the tree moves into the store under its input key ``trees/<key>``,
read-only.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .. import formats
from ..errors import BuildError
from ..fsutil import atomic_write, canonical_json, remove_tree
from ..lock import pylock
from ..proc import tail
from ..sandbox import Bind, Sandbox, netns_available
from ..snapshot import Store
from . import debs
from .base import BuildInputs, BuildResult, Note, SourceToBuild, build_key, quiet
from .tree import canonicalize, clamp_mtimes, make_readonly, tree_digest

NAME = "embedded"
# Bump when the recipe changes what a build produces: old trees are then rebuilt.
VERSION = 5  # 4: canonical modes, exact-mode digest; 5: one assembler (pypa installer) for both builders
# Bump when assemble.py changes what it builds: cached wheels built from source are then rebuilt.
ASSEMBLER = "1"
# The pinned build tools the assembler itself imports.
BASE_TOOLS = ("installer", "pyproject-hooks")
# Build .debs that are not part of any root: the Nix builder's trust root.
EXCLUDED_FROM_ROOTS = ("busybox-static",)


class EmbeddedBuilder:
    """The default builder: Debian .debs unpacked in Python, wheels installed by uv, all under bwrap."""

    name = NAME
    version = VERSION

    def key(self, inputs: BuildInputs) -> str:
        return build_key(inputs.snapshot_id, inputs.platform, NAME, VERSION)

    def cached(self, store: Store, snapshot_id: str) -> BuildResult | None:
        inputs = BuildInputs.load(store, snapshot_id)
        return self._cached(inputs, time.perf_counter())

    def _cached(self, inputs: BuildInputs, t0: float) -> BuildResult | None:
        key = self.key(inputs)
        meta = read_meta(inputs.store, key)
        rootfs = inputs.store.paths.tree(key) / "rootfs"
        if meta is None or not rootfs.is_dir():
            return None
        return BuildResult(NAME, key, meta["tree-digest"], rootfs, inputs.snapshot_id, True,
                           meta.get("network-isolated", False), time.perf_counter() - t0,
                           meta.get("files", 0), meta.get("bytes", 0))

    def build(self, store: Store, snapshot_id: str, *, force: bool = False, note: Note = quiet) -> BuildResult:
        t0 = time.perf_counter()
        inputs = BuildInputs.load(store, snapshot_id)
        if not force:
            hit = self._cached(inputs, t0)
            if hit is not None:
                return hit
        isolated = netns_available()
        if not isolated:
            note("this kernel does not allow a network namespace here: building with the network visible "
                 "(the build still uses only store objects)")
        with store.session():
            stage = store.staging_dir("build-")
            try:
                result = _Build(inputs, stage, isolated, note).run(self.key(inputs))
            except BaseException:
                remove_tree(stage)
                raise
        result.seconds = time.perf_counter() - t0
        return result


BUILDER = EmbeddedBuilder()


def read_meta(store: Store, key: str) -> dict | None:
    """The metadata of the embedded tree *key*, or None if absent, unreadable or newer than this envgen."""
    try:
        doc = json.loads((store.paths.tree(key) / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format-version", 99) > formats.current("envgen-tree"):
        return None
    return doc


class _Build:
    """One build in a staging directory: each step a method, timed, in order."""

    def __init__(self, inputs: BuildInputs, stage: Path, isolated: bool, note: Note):
        self.inputs = inputs
        self.lock: pylock.Lock = inputs.lock
        self.store = inputs.store
        self.stage = stage
        self.root = stage / "rootfs"
        self.isolated = isolated
        self.note = note
        self.phases: dict[str, float] = {}

    def run(self, key: str) -> BuildResult:
        self.root.mkdir()
        self._step("debs", "unpacking the Debian runtime", self.unpack_debs)
        built = self._step("sources", "building the sources into wheels", self.build_sources)
        self._step("assemble", "installing the wheels and compiling bytecode", self.assemble, built)
        self._step("finish", "clamping times", self.finish)
        digest, lines, size = self._step("digest", "hashing the tree", self.digest)
        self.publish(key, digest, lines, size)
        return BuildResult(NAME, key, digest, self.store.paths.tree(key) / "rootfs", self.inputs.snapshot_id, False,
                           self.isolated, 0.0, len(lines), size, self.phases)

    def _step(self, phase: str, msg: str, fn, *args):
        self.note(msg)
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.phases[phase] = round(self.phases.get(phase, 0.0) + time.perf_counter() - t, 3)

    # ------------------------------------------------------------------ steps

    def unpack_debs(self) -> None:
        unpack_debs(self.store, self.lock, self.root, ("runtime",))

    def build_sources(self) -> list[Path]:
        """A wheel for every source of the lock: from the store's cache, or built now in a build root."""
        sources = self.inputs.sources_to_build()
        if not sources:
            return []
        root_debs = [d.sha256 for d in self.lock.debian.packages if d.role in ("runtime", "build")]
        out_dir = self.stage / "built"
        out_dir.mkdir()
        build_root: Path | None = None
        wheels = []
        for src in sources:
            key = src.key(self.lock.python, root_debs, ASSEMBLER)
            hit = cached_wheel(self.store, key)
            if hit is None:
                if build_root is None:
                    self.note("unpacking the build root (runtime and build .debs)")
                    build_root = self.stage / "buildroot"
                    build_root.mkdir()
                    unpack_debs(self.store, self.lock, build_root, ("runtime", "build"))
                self.note(f"building {src.name} from source with {src.backend}")
                hit = self._build_one(build_root, src, key)
            wheel_name, sha = hit
            link_or_copy(self.store.path_of(sha), out_dir / wheel_name)
            wheels.append(out_dir / wheel_name)
        if build_root is not None:
            remove_tree(build_root)
        return wheels

    def _build_one(self, build_root: Path, src: SourceToBuild, key: str) -> tuple[str, str]:
        work = self.stage / f"build-{src.name}"
        (work / "tools").mkdir(parents=True)
        (work / "out").mkdir()
        for fname, sha in src.requires + tuple(base_tools(self.inputs)):
            link_or_copy(self.store.path_of(sha), work / "tools" / fname)
        source = work / src.source_name
        link_or_copy(self.store.path_of(src.source_sha256), source)
        plan = plan_for(self.inputs, {"build": {"name": src.name, "source": f"/.build/source/{src.source_name}",
                                     "backend": src.backend, "backend_path": list(src.backend_path),
                                     "requires": [f"/.build/tools/{f}" for f, _ in src.requires]},
                           "out": "/.build/out"})
        (work / "plan.json").write_text(json.dumps(plan, sort_keys=True, indent=1))
        binds = [Bind(work / "tools", "/.build/tools"), Bind(source, f"/.build/source/{src.source_name}"),
                 Bind(work / "out", "/.build/out", True), Bind(work / "plan.json", "/.build/plan.json")]
        proc = self._sandbox(build_root, binds).run(
            [python_path(self.inputs), "-I", "-B", "-S", "/.build/assemble.py", "build-wheel", "/.build/plan.json"],
            capture_output=True, text=True)
        _check(proc, f"building {src.name} from source")
        built = sorted((work / "out").glob("*.whl"))
        if len(built) != 1:
            raise BuildError(f"building {src.name} from source gave {len(built)} wheels, expected one",
                             hint=f"a PEP 517 backend ({src.backend}) writes one wheel; if {src.name} has "
                                  "a wheel on PyPI, drop it from [build] from-source")
        sha = self.store.add_file(built[0], label=built[0].name)
        record_wheel(self.store, key, built[0].name, sha)
        remove_tree(work)
        return built[0].name, sha

    def assemble(self, built: list[Path]) -> None:
        spec = assembly(self.inputs, [(p.name, p) for p in built])
        dirs = {"wheels": spec.wheels, "tools": spec.tools}
        for sub, files in dirs.items():
            (self.stage / sub).mkdir()
            for fname, src in files:
                link_or_copy(src, self.stage / sub / fname)
        for fname, data in spec.files.items():
            (self.stage / fname).write_bytes(data)
        binds = [Bind(self.stage / sub, f"/.build/{sub}") for sub in dirs]
        binds += [Bind(self.stage / fname, f"/.build/{fname}") for fname in spec.files]
        proc = self._sandbox(self.root, binds).run(spec.command, capture_output=True, text=True)
        _check(proc, "assembling the env")
        for leftover in (*dirs, "built", *spec.files):
            remove_tree(self.stage / leftover)

    def _sandbox(self, root: Path, binds: list[Bind]) -> Sandbox:
        """The tree (or build root) as a writable /, the assembler and layout beside it, the network cut."""
        here = Path(__file__).resolve().parent
        return Sandbox(root=root, writable_root=True, network=not self.isolated,
                       binds=[Bind(here / "assemble.py", "/.build/assemble.py"),
                              Bind(here.parent / "layout.py", "/.build/layout.py"), *binds],
                       env=assembler_environ(self.inputs.epoch))

    def finish(self) -> None:
        remove_tree(self.root / ".build")  # the mount points bwrap made for the build inputs
        remove_tree(self.root / "build")   # /build/src, where sources were unpacked
        for sub in ("tmp", "run"):
            for child in (self.root / sub).iterdir():
                remove_tree(child)
        canonicalize(self.root)  # modes from the packages only, never from the umask (tree.canonicalize)
        clamp_mtimes(self.root, self.inputs.epoch)

    def digest(self) -> tuple[str, list[str], int]:
        make_readonly(self.root)  # the digest is of the exact modes of the tree as published
        digest, lines = tree_digest(self.root)
        size = sum(os.lstat(os.path.join(dp, f)).st_size for dp, _, fs in os.walk(self.root) for f in fs)
        return digest, lines, size

    def publish(self, key: str, digest: str, lines: list[str], size: int) -> None:
        """Move the (read-only) stage to trees/KEY (replacing a forced rebuild's old tree)."""
        meta = {
            **formats.header("envgen-tree"), "builder": NAME, "builder-version": VERSION, "key": key,
            "snapshot": self.inputs.snapshot_id, "platform": self.inputs.platform, "tree-digest": digest,
            "files": len(lines), "bytes": size, "network-isolated": self.isolated,
        }
        (self.stage / "listing.txt").write_text("\n".join(lines) + "\n")
        (self.stage / "meta.json").write_text(json.dumps(meta, sort_keys=True, indent=2) + "\n")
        dest = self.store.paths.tree(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        remove_tree(dest)
        os.rename(self.stage, dest)
        os.chmod(dest, 0o755)


@dataclass
class Assembly:
    """Everything the assembler's ``assemble`` step reads, laid out under ``/.build``.

    The embedded builder binds it into its sandbox; a bundle's ``VERIFY.sh``
    lays out the same files for envgen's own environment (:mod:`envgen.selfhost`).
    """

    debs: list[tuple[str, str]]        # (package name, sha256) of the runtime .debs, in unpack order
    wheels: list[tuple[str, Path]]     # (file name, path) of every wheel to install -> /.build/wheels
    tools: list[tuple[str, Path]]      # the assembler's own pinned tools -> /.build/tools
    files: dict[str, bytes]            # plan.json, pylock.toml, snapshot.json -> /.build/NAME
    command: list[str]                 # what runs, with the tree as /


def assembly(inputs: BuildInputs, built: list[tuple[str, Path]]) -> Assembly:
    """The assemble step of a build of *inputs*, given the wheels built from its sources."""
    store = inputs.store
    wheels = []
    for p in inputs.lock.packages:
        for w in p.wheels:
            store.read_verified(w.sha256, w.filename)
            wheels.append((w.filename, store.path_of(w.sha256)))
    plan = plan_for(inputs, {"wheelhouse": "/.build/wheels", "python_full": inputs.python_full_version(),
                             "lock": "/.build/pylock.toml", "manifest": "/.build/snapshot.json"})
    return Assembly(
        debs=[(d.name, d.sha256) for d in runtime_debs(inputs.lock, ("runtime",))],
        wheels=sorted(wheels + list(built)),
        tools=[(fname, store.path_of(sha)) for fname, sha in base_tools(inputs)],
        files={"plan.json": json.dumps(plan, sort_keys=True, indent=1).encode(), "pylock.toml": inputs.lock_bytes,
               "snapshot.json": canonical_json(inputs.manifest)},
        command=[python_path(inputs), "-I", "-B", "-S", "/.build/assemble.py", "assemble", "/.build/plan.json"])


def base_tools(inputs: BuildInputs) -> list[tuple[str, str]]:
    """(file name, sha256) of the pinned tools the assembler itself imports."""
    return [(w.filename, w.sha256) for w in (inputs.tool_wheel(n) for n in BASE_TOOLS)]


def python_path(inputs: BuildInputs) -> str:
    return f"/usr/bin/python{inputs.lock.python}"


def plan_for(inputs: BuildInputs, extra: dict) -> dict:
    """The assembler's plan: the keys every step reads, plus the step's own (*extra*)."""
    tools = {n.replace("-", "_"): f"/.build/tools/{inputs.tool_wheel(n).filename}" for n in BASE_TOOLS}
    return {"python": inputs.lock.python, "python_cmd": [python_path(inputs)], "epoch": inputs.epoch,
            "layout": "/.build/layout.py", "tools": tools, **extra}


def runtime_debs(lock: pylock.Lock, roles: tuple[str, ...]) -> list[pylock.DebPackage]:
    """The lock's .debs of *roles* in unpack order (package name), the Nix builder's trust root left out."""
    return [d for d in sorted(lock.debian.packages, key=lambda d: d.name)
            if d.role in roles and d.name not in EXCLUDED_FROM_ROOTS]


def unpack_debs(store: Store, lock: pylock.Lock, root: Path, roles: tuple[str, ...]) -> None:
    """Unpack the lock's .debs of *roles* into *root*, in package-name order (as the Nix builder does)."""
    for d in runtime_debs(lock, roles):
        data = store.read_verified(d.sha256, Path(d.filename).name)
        debs.extract_deb(io.BytesIO(data), root, d.name)


def assembler_environ(epoch: int) -> dict[str, str]:
    """What the sandbox starts the assembler with (it sets its children's environment itself)."""
    return {"SOURCE_DATE_EPOCH": str(epoch), "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
            "LC_ALL": "C.UTF-8", "TZ": "UTC"}


def cached_wheel(store: Store, key: str) -> tuple[str, str] | None:
    """(file name, sha256) of the wheel built before from the inputs *key*, if it is still in the store."""
    try:
        doc = json.loads((store.paths.built_wheels / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("kind") != "envgen-built-wheel" or \
            doc.get("format-version", 99) > formats.current("envgen-built-wheel"):
        return None
    if not store.has(doc.get("sha256", "")):
        return None
    return doc["wheel"], doc["sha256"]


def record_wheel(store: Store, key: str, wheel: str, sha: str) -> None:
    atomic_write(store.paths.built_wheels / f"{key}.json",
                 json.dumps({**formats.header("envgen-built-wheel"), "key": key, "wheel": wheel, "sha256": sha},
                            sort_keys=True) + "\n")


# --------------------------------------------------------------------------- shared with other builders


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _check(proc, what: str) -> None:
    if proc.returncode != 0:
        why = tail(proc.stderr, 4) if proc.stderr else f"exit status {proc.returncode}"
        raise BuildError(f"build failed while {what}: {why}")


def remove_build(store: Store, key: str) -> None:
    remove_tree(store.paths.tree(key))
