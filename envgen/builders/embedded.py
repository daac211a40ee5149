"""The embedded builder: snapshot -> environment tree, with uv, under bubblewrap.

Only store objects go in; the network is cut.  The result is a root
filesystem for the target platform::

    /usr, /lib, /lib64, /etc ...   the pinned Debian runtime (data members only)
    /opt/env                       a venv-style prefix on the Debian interpreter
    /opt/env/bin/python            -> /usr/bin/python3.X
    /.envgen/                      the lock and snapshot manifest it was built from
    /proc /dev /tmp /sys /run /home empty mount points for the runtimes

Steps: unpack the runtime .debs; lay out the prefix; then, inside bwrap with
the half-built tree as ``/`` (so the tree's own Python and glibc do the work),
uv installs the locked wheels (``--offline --no-index --require-hashes``) and
each local project (built by its pinned build backend from the snapshot's
wheels); ``compileall --invalidation-mode unchecked-hash`` writes bytecode
for the env and the standard library.  Then every mtime is clamped to the
snapshot date, the tree digest is taken, and the tree moves into the store
under its input key ``trees/<key>``, read-only.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import formats, layout
from ..errors import BuildError
from ..fsutil import canonical_json, remove_tree
from ..lock import pylock
from ..lock.export import requirements_txt
from ..proc import tail
from ..sandbox import Bind, Sandbox, netns_available
from ..snapshot import Store
from . import debs
from .base import BuildInputs, BuildResult, Note, build_key, quiet
from .tree import canonicalize, clamp_mtimes, make_readonly, tree_digest

NAME = "embedded"
# Bump when the recipe changes what a build produces: old trees are then rebuilt.
VERSION = 4  # 4: canonical modes (never the umask's), digest of exact modes on the read-only tree
# Files installers write that record the build machine's state, not the env's.
SCRUB = ("uv_cache.json",)


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
        self._step("debs", "laying out the env prefix", self.skeleton)
        sandbox = self._step("prepare", "preparing the build inputs", self.prepare)
        self._step("wheels", "installing the locked wheels with uv", self.install_wheels, sandbox)
        for name in self.local_names:
            self._step("local", f"building and installing the local project {name}", self.install_local,
                       sandbox, name)
        self._step("bytecode", "compiling bytecode (unchecked-hash)", self.compile_bytecode, sandbox)
        self._step("finish", "writing /.envgen and clamping times", self.finish)
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
        for d in sorted(self.lock.debian.packages, key=lambda d: d.name):
            if d.role == "runtime":
                data = self.store.read_verified(d.sha256, Path(d.filename).name)
                debs.extract_deb(io.BytesIO(data), self.root, d.name)

    def skeleton(self) -> None:
        write_skeleton(self.root, self.lock.python, self.inputs.python_full_version())

    def prepare(self) -> Sandbox:
        """The wheelhouse, requirements and local sources under the stage, and the sandbox that sees them."""
        wheels = self.stage / "wheels"
        wheels.mkdir()
        for p in self.lock.packages + self.lock.build_tools:
            for w in p.wheels:
                self.store.read_verified(w.sha256, w.filename)
                link_or_copy(self.store.path_of(w.sha256), wheels / w.filename)
        req_text, _, _ = requirements_txt(self.lock)
        (self.stage / "requirements.txt").write_text(req_text)
        src = self.stage / "src"
        src.mkdir()
        self.local_names = []
        for name, o in self.inputs.local_sources():
            data = self.store.read_verified(o["sha256"], f"local project {name}")
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
                tf.extractall(src / name, filter="data")
            self.local_names.append(name)
        from ..lock.resolve import uv_bin

        return Sandbox(
            root=self.root, writable_root=True, network=not self.isolated,
            binds=[Bind(wheels, "/.build/wheels"), Bind(src, "/.build/src"),
                   Bind(self.stage / "requirements.txt", "/.build/requirements.txt"),
                   Bind(Path(uv_bin()), "/.build/uv")],
            env={"SOURCE_DATE_EPOCH": str(self.inputs.epoch), "UV_CACHE_DIR": "/tmp/uv-cache", "UV_NO_CONFIG": "1",
                 "PYTHONHASHSEED": "0", "UV_LINK_MODE": "copy",
                 # no interpreter started during the build may leave timestamp pycs behind
                 "PYTHONDONTWRITEBYTECODE": "1"},
        )

    def _uv(self) -> list[str]:
        return ["/.build/uv", "pip", "install", "--python", f"{layout.ENV_PREFIX}/bin/python", "--offline",
                "--no-index", "--find-links", "/.build/wheels", "--no-deps", "--quiet"]

    def install_wheels(self, sandbox: Sandbox) -> None:
        _check(sandbox.run(self._uv() + ["--require-hashes", "-r", "/.build/requirements.txt"],
                           capture_output=True, text=True), "installing the locked wheels")

    def install_local(self, sandbox: Sandbox, name: str) -> None:
        _check(sandbox.run(self._uv() + [f"/.build/src/{name}"], capture_output=True, text=True),
               f"building the local project {name}")

    def compile_bytecode(self, sandbox: Sandbox) -> None:
        _scrub_install_metadata(self.root / layout.site_packages(self.lock.python).lstrip("/"))
        compile_bytecode(sandbox, self.root, self.stage, self.lock.python)

    def finish(self) -> None:
        d = self.root / layout.ENVGEN_DIR
        d.mkdir()
        (d / "pylock.toml").write_bytes(self.inputs.lock_bytes)
        (d / "snapshot.json").write_bytes(canonical_json(self.inputs.manifest))
        remove_tree(self.root / ".build")  # the mount points bwrap made for the build inputs
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
        for leftover in ("wheels", "src", "requirements.txt"):
            remove_tree(self.stage / leftover)
        dest = self.store.paths.tree(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        remove_tree(dest)
        os.rename(self.stage, dest)
        os.chmod(dest, 0o755)


# --------------------------------------------------------------------------- shared with other builders


def write_skeleton(root: Path, python: str, python_full: str) -> None:
    """Mount points, the /opt/env prefix on the Debian interpreter, /etc files and homes (see envgen.layout)."""
    for d in layout.MOUNTPOINTS:
        (root / d).mkdir(exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    prefix = root / layout.ENV_PREFIX.lstrip("/")
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    (root / layout.site_packages(python).lstrip("/")).mkdir(parents=True, exist_ok=True)
    os.symlink(f"/usr/bin/python{python}", prefix / "bin" / "python")
    os.symlink("python", prefix / "bin" / "python3")
    os.symlink("python", prefix / "bin" / f"python{python}")
    (prefix / "pyvenv.cfg").write_text(layout.pyvenv_cfg(python_full))
    for rel, text in layout.etc_files().items():
        (root / rel).parent.mkdir(exist_ok=True)
        (root / rel).write_text(text)
    (root / "home" / layout.USER).mkdir(exist_ok=True)
    (root / "root").mkdir(exist_ok=True)


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def compile_bytecode(sandbox: Sandbox, root: Path, stage: Path, python: str) -> None:
    """Unchecked-hash pycs for the env and the standard library, in fixed chunks, by the tree's own Python."""
    files: list[str] = []
    for d in (layout.site_packages(python), f"/usr/lib/python{python}"):
        for dirpath, dirnames, filenames in os.walk(root / d.lstrip("/")):
            dirnames[:] = [n for n in dirnames if n != "__pycache__"]
            for name in filenames:
                if name.endswith(".py"):
                    path = "/" + os.path.relpath(os.path.join(dirpath, name), root)
                    if not any(x in path for x in layout.COMPILE_EXCLUDE):
                        files.append(path)
    files.sort()
    n = layout.COMPILE_CHUNKS
    lists = stage / "compile"
    lists.mkdir()
    for i in range(n):
        (lists / f"{i}.txt").write_text("\n".join(files[i::n]) + "\n")
    inner = Sandbox(root=sandbox.root, writable_root=True, network=sandbox.network,
                    binds=[Bind(lists, "/.build/compile")], env=sandbox.env)

    def one(i: int):
        return inner.run([f"{layout.ENV_PREFIX}/bin/python", "-B", "-m", "compileall", "-q", "-f",
                          "--invalidation-mode", "unchecked-hash", "-i", f"/.build/compile/{i}.txt"],
                         capture_output=True, text=True)

    with ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, n))) as pool:
        procs = list(pool.map(one, range(n)))
    for proc in procs:
        # 1 = some file did not compile (e.g. Python 2 test data a wheel ships), which
        # installers tolerate too; anything else is a failure of the step itself
        if proc.returncode not in (0, 1):
            _check(proc, "compiling bytecode")
    remove_tree(lists)


def _scrub_install_metadata(site: Path) -> None:
    """Drop installer cache files (uv_cache.json holds a wall-clock timestamp) and their RECORD lines."""
    for info in sorted(site.glob("*.dist-info")):
        removed = [name for name in SCRUB if (info / name).exists()]
        for name in removed:
            (info / name).unlink()
        record = info / "RECORD"
        if removed and record.is_file():
            prefix = tuple(f"{info.name}/{name}," for name in removed)
            lines = [ln for ln in record.read_text().splitlines(keepends=True) if not ln.startswith(prefix)]
            record.write_text("".join(lines))


def _check(proc, what: str) -> None:
    if proc.returncode != 0:
        why = tail(proc.stderr, 4) if proc.stderr else f"exit status {proc.returncode}"
        raise BuildError(f"build failed while {what}: {why}")


def remove_build(store: Store, key: str) -> None:
    remove_tree(store.paths.tree(key))
