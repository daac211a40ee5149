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

import hashlib
import io
import json
import os
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import FORMAT_VERSION
from ..errors import EnvgenError
from ..fsutil import atomic_write, canonical_json
from ..lock import pylock
from ..lock.export import requirements_txt
from ..layout import ENV_PREFIX
from ..sandbox import Bind, Sandbox, netns_available
from ..snapshot import local_sources, make_plan, snapshot
from ..snapshot.store import Store
from . import debs
from .tree import clamp_mtimes, make_readonly, make_writable, tree_digest

BUILDER = "embedded"
# Bump when the recipe changes what a build produces: old trees are then rebuilt.
BUILDER_VERSION = 3
MOUNTPOINTS = ("proc", "dev", "tmp", "sys", "run", "home")
ENV_USER = ("envgen", 1000)


@dataclass
class BuildResult:
    key: str
    digest: str
    rootfs: Path
    snapshot_id: str
    cached: bool
    network_isolated: bool
    seconds: float
    files: int = 0
    size: int = 0
    builder: str = BUILDER
    phases: dict | None = None  # seconds per step, for a fresh build

    def as_dict(self) -> dict:
        return {
            "builder": self.builder, "key": self.key, "tree_digest": self.digest, "path": str(self.rootfs),
            "snapshot_id": self.snapshot_id, "cached": self.cached, "network_isolated": self.network_isolated,
            "seconds": round(self.seconds, 3), "files": self.files, "bytes": self.size,
            **({"phases": self.phases} if self.phases else {}),
        }


def build_key(snapshot_id: str, platform: str, builder: str = BUILDER, version: int = BUILDER_VERSION) -> str:
    return hashlib.sha256(canonical_json(
        {"builder": builder, "builder-version": version, "platform": platform, "snapshot": snapshot_id})).hexdigest()


def tree_dir(store: Store, key: str) -> Path:
    return store.paths.tree(key)


def read_meta(store: Store, key: str) -> dict | None:
    meta = tree_dir(store, key) / "meta.json"
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format-version", 99) > FORMAT_VERSION:
        return None
    return data


def check_objects(store: Store, lock: pylock.Lock, spec_path: Path | None) -> None:
    """Fail (offline) if any object the build needs is absent from the store."""
    plan = make_plan(lock, spec_path)
    missing = [f for f in plan.fetches if f.role != "sdist" and not store.has(f.sha256)]
    if missing:
        names = ", ".join(f.name for f in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise EnvgenError(f"{len(missing)} store objects missing: {names}", hint="run `envgen snapshot SPEC` first")


def _write_skeleton(root: Path, lock: pylock.Lock, python_full: str) -> None:
    for d in MOUNTPOINTS:
        (root / d).mkdir(exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    prefix = root / ENV_PREFIX.lstrip("/")
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    (prefix / "lib" / f"python{lock.python}" / "site-packages").mkdir(parents=True, exist_ok=True)
    os.symlink(f"/usr/bin/python{lock.python}", prefix / "bin" / "python")
    os.symlink("python", prefix / "bin" / "python3")
    os.symlink("python", prefix / "bin" / f"python{lock.python}")
    (prefix / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {python_full}\n")
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    user, uid = ENV_USER
    (etc / "passwd").write_text(f"root:x:0:0:root:/root:/bin/sh\n{user}:x:{uid}:{uid}:envgen:/home/{user}:/bin/sh\n"
                                "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    # mount points for the host's name resolution, bound over them by `run --network`
    (etc / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    (etc / "resolv.conf").write_text("")
    (etc / "group").write_text(f"root:x:0:\n{user}:x:{uid}:\nnogroup:x:65534:\n")
    (root / "home" / user).mkdir(exist_ok=True)
    (root / "root").mkdir(exist_ok=True)


def _python_full_version(lock: pylock.Lock) -> str:
    deb = lock.deb(f"python{lock.python}")
    if deb is None:
        raise EnvgenError(f"the lock has no python{lock.python} .deb; re-lock the spec")
    upstream = deb.version.split(":")[-1].split("-")[0]
    return upstream


def _unpack_local(store: Store, sha: str, name: str, dest: Path) -> None:
    data = store.read_verified(sha, f"local project {name}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        tf.extractall(dest, filter="data")


def build(store: Store, lock: pylock.Lock, spec_path: Path | None = None, *, force: bool = False,
          note=lambda msg: None) -> BuildResult:
    t0 = time.perf_counter()
    check_objects(store, lock, spec_path)
    snap = snapshot(store, lock, spec_path)  # offline here: every object is present; packs local sources
    platform = lock.platforms[0]
    key = build_key(snap.id, platform)
    dest = tree_dir(store, key)
    meta = read_meta(store, key)
    if meta is not None and not force and (dest / "rootfs").is_dir():
        return BuildResult(key, meta["tree-digest"], dest / "rootfs", snap.id, True, meta.get("network-isolated", False),
                           time.perf_counter() - t0, meta.get("files", 0), meta.get("bytes", 0))

    phases: dict[str, float] = {}
    mark = [time.perf_counter(), "prepare"]

    def phase(name: str, msg: str) -> None:
        now = time.perf_counter()
        phases[mark[1]] = round(phases.get(mark[1], 0.0) + now - mark[0], 3)
        mark[0], mark[1] = now, name
        note(msg)

    isolated = netns_available()
    if not isolated:
        note("this kernel does not allow a network namespace here: building with the network visible "
             "(the build still uses only store objects)")
    epoch = int(lock.snapshot_date.timestamp())

    with store.session():
        stage = store.staging_dir("build-")
        try:
            root = stage / "rootfs"
            root.mkdir()
            phase("debs", "unpacking the Debian runtime")
            for d in sorted(lock.debian.packages, key=lambda d: d.name):
                if d.role != "runtime":
                    continue
                data = store.read_verified(d.sha256, Path(d.filename).name)
                debs.extract_deb(io.BytesIO(data), root, d.name)
            _write_skeleton(root, lock, _python_full_version(lock))

            # the wheelhouse: store objects under their file names, verified
            wheels = stage / "wheels"
            wheels.mkdir()
            for p in lock.packages + lock.build_tools:
                for w in p.wheels:
                    store.read_verified(w.sha256, w.filename)
                    target = wheels / w.filename
                    try:
                        os.link(store.path_of(w.sha256), target)
                    except OSError:
                        shutil.copyfile(store.path_of(w.sha256), target)
            req_text, _, _ = requirements_txt(lock)
            (stage / "requirements.txt").write_text(req_text)
            src = stage / "src"
            src.mkdir()
            local_names = []
            for name, o in local_sources(lock, snap.manifest):
                _unpack_local(store, o["sha256"], name, src / name)
                local_names.append(name)

            from ..lock.resolve import uv_bin

            sandbox = Sandbox(
                root=root, writable_root=True, network=not isolated,
                binds=[Bind(wheels, "/.build/wheels"), Bind(src, "/.build/src"),
                       Bind(stage / "requirements.txt", "/.build/requirements.txt"), Bind(Path(uv_bin()), "/.build/uv")],
                env={"SOURCE_DATE_EPOCH": str(epoch), "UV_CACHE_DIR": "/tmp/uv-cache", "UV_NO_CONFIG": "1",
                     "PYTHONHASHSEED": "0", "UV_LINK_MODE": "copy",
                     # no interpreter started during the build may leave timestamp pycs behind
                     "PYTHONDONTWRITEBYTECODE": "1"},
            )
            uv = ["/.build/uv", "pip", "install", "--python", f"{ENV_PREFIX}/bin/python", "--offline", "--no-index",
                  "--find-links", "/.build/wheels", "--no-deps", "--quiet"]
            phase("wheels", "installing the locked wheels with uv")
            _check(sandbox.run(uv + ["--require-hashes", "-r", "/.build/requirements.txt"],
                               capture_output=True, text=True), "installing the locked wheels")
            for name in local_names:
                phase("local", f"building and installing the local project {name}")
                _check(sandbox.run(uv + [f"/.build/src/{name}"], capture_output=True, text=True),
                       f"building the local project {name}")
            _scrub_install_metadata(root / ENV_PREFIX.lstrip("/") / "lib" / f"python{lock.python}" / "site-packages")
            phase("bytecode", "compiling bytecode (unchecked-hash)")
            _compile_bytecode(sandbox, root, stage, lock.python)
            _write_envgen_dir(root, lock, snap.manifest)
            shutil.rmtree(root / ".build")  # the mount points bwrap made for the build inputs
            for d in ("tmp", "run"):
                for child in (root / d).iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            clamp_mtimes(root, epoch)
            phase("digest", "hashing the tree")
            digest, lines = tree_digest(root)
            size = sum(os.lstat(os.path.join(dp, f)).st_size for dp, _, fs in os.walk(root) for f in fs)
            make_readonly(root)
            meta = {
                "format-version": FORMAT_VERSION, "kind": "envgen-tree", "builder": BUILDER,
                "builder-version": BUILDER_VERSION, "key": key, "snapshot": snap.id, "platform": platform,
                "tree-digest": digest, "files": len(lines), "bytes": size, "network-isolated": isolated,
            }
            (stage / "listing.txt").write_text("\n".join(lines) + "\n")
            (stage / "meta.json").write_text(json.dumps(meta, sort_keys=True, indent=2) + "\n")
            shutil.rmtree(wheels)
            shutil.rmtree(src)
            os.unlink(stage / "requirements.txt")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                _remove_tree(dest)
            os.rename(stage, dest)
            os.chmod(dest, 0o755)
            phase("done", "done")
        except BaseException:
            _remove_tree(stage)
            raise
    res = BuildResult(key, digest, dest / "rootfs", snap.id, False, isolated, time.perf_counter() - t0,
                      len(lines), size)
    res.phases = {k: v for k, v in phases.items() if k != "done"}
    return res


# Bytecode is compiled in this many fixed chunks of the sorted file list, each by
# a fresh interpreter: parallel, yet independent of the machine's core count.
COMPILE_CHUNKS = 8
COMPILE_EXCLUDE = ("/lib2to3/tests/data/", "/test/bad")


def _compile_bytecode(sandbox: Sandbox, root: Path, stage: Path, python: str) -> None:
    dirs = [f"{ENV_PREFIX}/lib/python{python}/site-packages", f"/usr/lib/python{python}"]
    files: list[str] = []
    for d in dirs:
        for dirpath, dirnames, filenames in os.walk(root / d.lstrip("/")):
            dirnames[:] = [n for n in dirnames if n != "__pycache__"]
            for name in filenames:
                if name.endswith(".py"):
                    path = "/" + os.path.relpath(os.path.join(dirpath, name), root)
                    if not any(x in path for x in COMPILE_EXCLUDE):
                        files.append(path)
    files.sort()
    chunks = [files[i::COMPILE_CHUNKS] for i in range(COMPILE_CHUNKS)]
    lists = stage / "compile"
    lists.mkdir()
    for i, chunk in enumerate(chunks):
        (lists / f"{i}.txt").write_text("\n".join(chunk) + "\n")
    inner = Sandbox(root=sandbox.root, writable_root=True, network=sandbox.network,
                    binds=[Bind(lists, "/.build/compile")], env=sandbox.env)
    procs = []
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int):
        return inner.run([f"{ENV_PREFIX}/bin/python", "-B", "-m", "compileall", "-q", "-f",
                          "--invalidation-mode", "unchecked-hash", "-i", f"/.build/compile/{i}.txt"],
                         capture_output=True, text=True)

    with ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, COMPILE_CHUNKS))) as pool:
        procs = list(pool.map(one, range(COMPILE_CHUNKS)))
    for proc in procs:
        # 1 = some file did not compile (e.g. Python 2 test data a wheel ships), which
        # installers tolerate too; anything else is a failure of the step itself
        if proc.returncode not in (0, 1):
            _check(proc, "compiling bytecode")
    shutil.rmtree(lists)


# Files installers write that record the build machine's state, not the env's.
SCRUB = ("uv_cache.json",)


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


def _write_envgen_dir(root: Path, lock: pylock.Lock, manifest: dict) -> None:
    d = root / ".envgen"
    d.mkdir()
    (d / "pylock.toml").write_text(pylock.dumps(lock))
    (d / "snapshot.json").write_bytes(canonical_json(manifest))


def _check(proc, what: str) -> None:
    if proc.returncode != 0:
        err = (proc.stderr or "").strip().splitlines()
        tail = " | ".join(line.strip() for line in err[-4:]) or f"exit status {proc.returncode}"
        raise EnvgenError(f"build failed while {what}: {tail}")


def _remove_tree(path: Path) -> None:
    if path.exists():
        make_writable(path)
        shutil.rmtree(path, ignore_errors=True)


def remove_build(store: Store, key: str) -> None:
    _remove_tree(tree_dir(store, key))
