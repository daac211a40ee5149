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

import contextlib
import io
import json
import os
import queue
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .. import formats, layout
from ..errors import BuildError, NoSpace
from ..fsutil import atomic_write, canonical_json, remove_tree
from ..lock import pylock
from ..proc import tail
from ..sandbox import Bind, Sandbox, netns_available
from ..snapshot import Store
from . import assemble as asm
from . import debs
from .base import BuildInputs, BuildResult, Note, SourceToBuild, build_key, quiet
from .tree import canonicalize, clamp_mtimes, digest_of, make_readonly, settle, tree_digest
from .units import (
    Harvester,
    Linker,
    Unit,
    bytecode_unit,
    compiler_inputs,
    deb_unit,
    find,
    make_deb_units,
    python_sources,
    wheel_unit,
)

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

    def build(self, store: Store, snapshot_id: str, *, force: bool = False, note: Note = quiet,
              units: bool = True) -> BuildResult:
        """Build the tree of *snapshot_id*: from install units (*units*, the default: each package installed
        once in the store, reused by every tree that has it; *force* makes them afresh too), or, with
        ``units=False``, by installing every wheel into the tree at once (the whole-tree install the Nix
        builder and VERIFY.sh run; the same tree)."""
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
            build = _Build(inputs, stage, isolated, note, force=force)
            try:
                result = build.run_units(self.key(inputs)) if units else build.run(self.key(inputs))
            except BaseException:
                build.drop_staged_units()
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

    def __init__(self, inputs: BuildInputs, stage: Path, isolated: bool, note: Note, force: bool = False):
        self.inputs = inputs
        self.force = force
        self.units: list[Unit] = []
        self.built_shas: dict[str, str] = {}
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

    def run_units(self, key: str) -> BuildResult:
        """The build from install units (envgen/builders/units.py)."""
        self.root.mkdir()
        linker = Linker(self.root, self.inputs.epoch)
        self._step("debs", "unpacking the Debian runtime", self.deb_units, linker)
        built = self._step("sources", "building the sources into wheels", self.build_sources)
        self._step("skeleton", "laying out the env", self.skeleton)
        self._step("units", "installing the wheels and compiling bytecode", self.package_units, built, linker)
        self._step("finish", "writing /.envgen", self.finish_units)
        digest, lines, size = self._step("digest", "hashing the tree", self.digest_units, linker)
        self.drop_staged_units()
        remove_tree(self.stage / "built")
        self.publish(key, digest, lines, size)
        built_names = sorted(f"{u.kind} {u.name}" for u in self.units if u.built)
        summary = {"built": len(built_names), "reused": len(self.units) - len(built_names), "made": built_names,
                   "linked": linker.linked, "copied": linker.copied}
        return BuildResult(NAME, key, digest, self.store.paths.tree(key) / "rootfs", self.inputs.snapshot_id, False,
                           self.isolated, 0.0, len(lines), size, self.phases, summary)

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

    def deb_units(self, linker: Linker) -> None:
        """A unit per runtime .deb (made now or found), placed into the tree in unpack order."""
        units = [deb_unit(d, self.store.path_of(d.sha256)) for d in runtime_debs(self.lock, ("runtime",))]
        self.units += units
        make_deb_units(self.store, [u for u in units if self.force or not find(self.store, u)], self.inputs.epoch,
                       _jobs())
        for u in units:
            linker.add(u, dpkg=True)

    def skeleton(self) -> None:
        asm.skeleton(layout, self.lock.python, self.inputs.python_full_version(), root=str(self.root))

    def package_units(self, built: list[Path], linker: Linker) -> None:
        """A unit per wheel and one for the standard library's bytecode: the ones the store has are placed
        into the tree; the others are installed and compiled in the tree, as a whole-tree install does, and
        taken into their units as the sandbox says their files are final (units.Harvester)."""
        python = self.lock.python
        base = compiler_inputs(self.lock, ASSEMBLER)
        installer = self.inputs.tool_wheel("installer").sha256
        wheels = [(w.filename, w.sha256) for p in self.lock.packages for w in p.wheels]
        wheels += [(p.name, self.built_shas[p.name]) for p in built]
        units = [wheel_unit(name, sha, self.store.path_of(sha), installer, base) for name, sha in sorted(wheels)]
        sources, size = python_sources(self.root, f"/usr/lib/python{python}", linker.known)
        stdlib = bytecode_unit(sources, size, base)
        self.units += [*units, stdlib]
        have = {u.key for u in (*units, stdlib) if not self.force and find(self.store, u)}
        missing = [u for u in units if u.key not in have]
        # the standard library's pycs first (compileall then imports from them); then the units the store
        # has, side by side, while the sandbox installs and compiles the ones it has not (what it compiles
        # and installs does not depend on them: its interpreter's site is not the env's, and a path both
        # install alike is no conflict either way round)
        if stdlib.key in have:
            linker.add(stdlib, dpkg=False)
        present = [u for u in units if u.key in have]
        if not missing and stdlib.key in have:
            linker.add_exclusive(present, 2 * _jobs())
            return
        harvester = Harvester(self.store, self.root, python, self.inputs.epoch, missing,
                              stdlib if stdlib.key not in have else None, _jobs())
        said: queue.SimpleQueue = queue.SimpleQueue()
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1) as background:
            installing = background.submit(self.install, missing, stdlib.key not in have, said)
            try:
                linker.add_exclusive(present, 2 * _jobs())
                # the units' files as the sandbox says they are final, while it goes on compiling
                while (line := said.get()) is not None:
                    word, _, value = line.partition(" [")
                    if word == asm.INSTALLED:
                        harvester.installed(json.loads("[" + value))
                    elif word == asm.COMPILED:
                        harvester.compiled(json.loads("[" + value))
            except OSError:
                # the builder's own writes failed (a full disk, a quota): that is the cause to name, not
                # what the sandbox, writing to the same filesystem, made of it
                with contextlib.suppress(Exception):
                    installing.result()
                raise
            except BaseException:
                installing.result()  # its failure first, if both fail: the linking waits for it
                raise
            installing.result()
        self.phases["install"] = round(time.perf_counter() - t, 3)  # of "units": installer and compileall
        t = time.perf_counter()
        harvester.publish(linker)
        self.phases["harvest"] = round(time.perf_counter() - t, 3)  # of "units": the pycs left, units published

    def install(self, missing: list[Unit], stdlib: bool, said: queue.SimpleQueue) -> None:
        """Run the assembler's ``units`` step in the tree: install *missing* and compile their bytecode (and
        the standard library's, with *stdlib*).  Each line the step prints goes to *said*, and None once
        it has ended."""
        try:
            self._install(missing, stdlib, said)
        finally:
            said.put(None)

    def _install(self, missing: list[Unit], stdlib: bool, said: queue.SimpleQueue) -> None:
        tools = [(fname, self.store.path_of(sha)) for fname, sha in base_tools(self.inputs)]
        dirs: dict[str, list[tuple[str, Path | None]]] = {"wheels": [(u.name, u.source) for u in missing],
                                                          "tools": [(f, p) for f, p in tools]}
        for sub, files in dirs.items():
            (self.stage / sub).mkdir()
            for fname, src in files:
                assert src is not None
                link_or_copy(src, self.stage / sub / fname)
        plan = plan_for(self.inputs, {"wheelhouse": "/.build/wheels", "stdlib": stdlib})
        (self.stage / "plan.json").write_text(json.dumps(plan, sort_keys=True, indent=1))
        binds = [Bind(self.stage / sub, f"/.build/{sub}") for sub in dirs]
        binds.append(Bind(self.stage / "plan.json", "/.build/plan.json"))
        argv = self._sandbox(self.root, binds).argv(
            [python_path(self.inputs), "-I", "-B", "-S", "/.build/assemble.py", "units", "/.build/plan.json"])
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err, \
                ThreadPoolExecutor(max_workers=_jobs()) as pool:
            # the wheels are checked against the lock while the step starts: nothing it makes is published
            # before they are (the builder publishes units only once this has returned)
            checks = [pool.submit(self.store.verified, u.inputs["wheel"], u.name) for u in missing]
            # stderr to a file: only stdout is read as it comes, and a full stderr pipe would block the step
            with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True) as proc:
                assert proc.stdout is not None
                for line in proc.stdout:
                    said.put(line.rstrip("\n"))
            for check in checks:
                check.result()  # a wheel that is not the lock's is the error, whatever the step made of it
            err.seek(0)
            _check(subprocess.CompletedProcess(argv, proc.returncode, "", err.read()), "installing the wheels",
                   self.store)
        for leftover in (*dirs, "plan.json"):
            remove_tree(self.stage / leftover)

    def finish_units(self) -> None:
        remove_tree(self.root / ".build")  # the mount points bwrap made for the assembler's inputs
        remove_tree(self.root / "build")
        d = self.root / layout.ENVGEN_DIR
        d.mkdir()
        (d / "pylock.toml").write_bytes(self.inputs.lock_bytes)
        (d / "snapshot.json").write_bytes(canonical_json(self.inputs.manifest))
        for sub in ("tmp", "run"):
            for child in (self.root / sub).iterdir():
                remove_tree(child)

    def digest_units(self, linker: Linker) -> tuple[str, list[str], int]:
        lines, size = settle(self.root, self.inputs.epoch, linker.known)
        return digest_of(lines), lines, size

    def drop_staged_units(self) -> None:
        """Remove the units this build made but did not publish (another build published them first)."""
        for u in self.units:
            if u.path is not None and u.path != self.store.paths.unit(u.key):
                remove_tree(u.path)

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
            self.built_shas[wheel_name] = sha
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
            # the install units the tree was made from (hard links into them): gc keeps these
            "units": sorted({u.key for u in self.units}),
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
            wheels.append((w.filename, store.verified(w.sha256, w.filename)))
    plan = plan_for(inputs, {"wheelhouse": "/.build/wheels", "python_full": inputs.python_full_version(),
                             "lock": "/.build/pylock.toml", "manifest": "/.build/snapshot.json"})
    return Assembly(
        debs=[(d.name, d.sha256) for d in runtime_debs(inputs.lock, ("runtime",))],
        wheels=sorted(wheels + list(built)),
        tools=[(fname, store.path_of(sha)) for fname, sha in base_tools(inputs)],
        files={"plan.json": json.dumps(plan, sort_keys=True, indent=1).encode(), "pylock.toml": inputs.lock_bytes,
               "snapshot.json": canonical_json(inputs.manifest)},
        command=[python_path(inputs), "-I", "-B", "-S", "/.build/assemble.py", "assemble", "/.build/plan.json"])


def _jobs() -> int:
    """How many units are made at once: the CPUs this process may use (the units do not depend on it)."""
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except (AttributeError, OSError):
        return max(1, min(8, os.cpu_count() or 1))


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


def _check(proc, what: str, store: Store | None = None) -> None:
    if proc.returncode != 0:
        if store is not None and _full(store.root):
            # the cause, whatever the step made of it (it may not even have had room to write its error)
            raise NoSpace(f"build failed while {what}: the filesystem of {store.root} is full",
                          hint=NoSpace.HINT)
        why = tail(proc.stderr, 4) if proc.stderr else f"exit status {proc.returncode}"
        raise BuildError(f"build failed while {what}: {why}")


def _full(path: Path) -> bool:
    """Whether the filesystem holding *path* has less than 1 MiB or no inode left for its user."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize < (1 << 20) or (st.f_files > 0 and st.f_favail == 0)


def remove_build(store: Store, key: str) -> None:
    remove_tree(store.paths.tree(key))
