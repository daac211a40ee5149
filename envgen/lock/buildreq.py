"""The build requirements of every source build, locked at the snapshot date (PEP 517/518).

A package is built from source when it is a local project, when the target
has no wheel for it, or when the spec's ``[build] from-source`` names it.
For each one:

1. *static*: ``[build-system]`` of its ``pyproject.toml`` (read from the sdist
   archive, or the local project's directory); without one, PEP 517's
   setuptools default;
2. uv resolves those requirements as it resolves the runtime set (snapshot
   date, the env's Python and platform);
3. *dynamic*: the backend's ``get_requires_for_build_wheel`` hook runs offline
   under bubblewrap, on the env's own Debian interpreter (the lock's runtime
   .debs), with only the pinned tools on ``PYTHONPATH`` and the source tree
   at ``/build/src/NAME``.  If it adds requirements, static and dynamic are
   resolved together again.

The pins are the source build's ``requires``; every pinned tool goes into
the lock's ``build_tools``.  Downloads (sdists, tool wheels, .debs) land in
the content-addressed store, verified by sha256; the unpacked interpreter
root, the unpacked tool sets and the hooks' answers are caches under
``envgen.paths.cache_dir()/lock``, so a re-lock runs no hook again.  An
answer is keyed by all it depends on (:func:`hook_key`): the source's bytes,
its backend, the pinned tools, the interpreter's .debs and the snapshot date.

A local project's static requirements are known before anything is
resolved, so ``envgen lock`` starts resolving them (:func:`start_local`) with
the runtime set, and locks its build while that resolution runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from ..errors import LockError
from ..fsutil import atomic_write, remove_tree
from ..spec import Spec
from . import pylock
from .resolve import UvSession, lock_cache
from .sdist import BuildSystem, parse_build_system, sdist_build_system, unpack_sdist

HOOK_CACHE_VERSION = 2
HOOK_TIMEOUT = 600

# The in-sandbox half: import the backend as pyproject_hooks does and ask it.
HOOK_SCRIPT = r"""
import importlib, json, os, sys
src, backend, paths, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
os.chdir(src)
sys.path[:0] = [os.path.normpath(os.path.join(src, p)) for p in paths]
mod, _, obj = backend.partition(":")
b = importlib.import_module(mod.strip())
for attr in [a for a in obj.strip().split(".") if a]:
    b = getattr(b, attr)
hook = getattr(b, "get_requires_for_build_wheel", None)
reqs = list(hook({})) if hook is not None else []
if not all(isinstance(r, str) for r in reqs):
    raise SystemExit("get_requires_for_build_wheel returned a non-string")
with open(out, "w") as fh:
    json.dump(reqs, fh)
"""


@dataclass
class SourceInput:
    """A package to build from source: an sdist of the resolution, or a local project."""

    name: str
    version: str | None
    reason: str  # "local" | "no-wheel" | "from-source" | "vcs"
    sdist: pylock.Artifact | None = None
    directory: Path | None = None  # a local project on disk
    tree: Path | None = None  # a git commit's source pack, unpacked (read for its pyproject.toml)
    pack: Path | None = None  # that pack, a store object
    pack_sha256: str | None = None
    pack_size: int | None = None


@dataclass
class BuildResolution:
    source_builds: list[pylock.SourceBuild]
    tools: list[pylock.PyPackage]  # every pinned tool, one entry per (name, version)


# --------------------------------------------------------------------------- verified downloads


def fetch_to_store(store, filename: str, url: str, sha256: str, size: int | None = None) -> Path:
    """*url* into the store (None: the default store), checked against *sha256*, by the snapshot stage's fetch."""
    from ..snapshot import fetch_object

    if store is None:
        from ..paths import store_dir
        from ..snapshot.store import Store

        store = Store(store_dir(None))
    return fetch_object(store, filename, sha256, size, [url])


# --------------------------------------------------------------------------- cached trees


@contextlib.contextmanager
def _flock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _cached_tree(kind: str, key: str, fill: Callable[[Path], None]) -> Path:
    """``lock_cache()/kind/key``, made once by *fill* (into a fresh directory, then renamed into place)."""
    final = lock_cache() / kind / key
    if final.is_dir():
        return final
    with _flock(lock_cache() / kind / f"{key}.lock"):
        if final.is_dir():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=final.parent))
        try:
            fill(tmp)
            os.rename(tmp, final)
        except BaseException:
            remove_tree(tmp)
            raise
    return final


def _runtime_debs(debs: list[pylock.DebPackage]) -> list[pylock.DebPackage]:
    runtime = sorted((d for d in debs if d.role == "runtime"), key=lambda d: d.name)
    if not runtime:
        raise LockError("the lock has no Debian runtime to run build backends on")
    return runtime


def interpreter_key(debs: list[pylock.DebPackage]) -> str:
    """What the hooks run on: the hash of the lock's runtime .debs (the OS base, its Python, the mirror's state)."""
    return hashlib.sha256("\n".join(d.sha256 for d in _runtime_debs(debs)).encode()).hexdigest()


def interpreter_root(store, debs: list[pylock.DebPackage]) -> Path:
    """The lock's runtime .debs unpacked into one tree (cached by their hashes): the hooks' ``/``."""
    from ..builders.debs import extract_deb

    runtime = _runtime_debs(debs)
    key = interpreter_key(debs)[:32]
    paths = {d.name: fetch_to_store(store, Path(d.filename).name, d.url, d.sha256, d.size) for d in runtime}

    def fill(tmp: Path) -> None:
        for d in runtime:
            with open(paths[d.name], "rb") as fh:
                extract_deb(fh, tmp, d.name)

    return _cached_tree("roots", key, fill)


def _safe_wheel_name(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and "\\" not in name and ".." not in parts


def tools_dir(store, wheels: list[pylock.Artifact]) -> Path:
    """The tool wheels unpacked into one directory for ``PYTHONPATH`` (cached by their hashes)."""
    key = hashlib.sha256("\n".join(sorted(w.sha256 for w in wheels)).encode()).hexdigest()[:32]
    paths = [(w, fetch_to_store(store, w.filename, w.url, w.sha256, w.size)) for w in wheels]

    def fill(tmp: Path) -> None:
        for w, path in paths:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if not _safe_wheel_name(info.filename):
                        raise LockError(f"{w.filename}: refused member {info.filename!r}")
                    target = tmp / info.filename
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as out:
                        while chunk := src.read(1 << 20):
                            out.write(chunk)

    return _cached_tree("tools", key, fill)


# --------------------------------------------------------------------------- sources


@dataclass
class _Source:
    sha256: str  # of the sdist, or of the local project's source pack
    build_system: BuildSystem
    unpack: Callable[[Path], None]


def _load_source(inp: SourceInput, spec: Spec, store) -> _Source:
    if inp.directory is not None:
        from ..snapshot.srcpack import pack_tree_bytes, unpack

        d = inp.directory
        pyproject = d / "pyproject.toml"
        text = pyproject.read_text() if pyproject.is_file() else None
        bs = parse_build_system(text, f"{d}/pyproject.toml")
        packed = pack_tree_bytes(d, spec.snapshot_epoch)

        def unpack_local(dest: Path) -> None:
            with tempfile.NamedTemporaryFile(suffix=".tar") as fh:
                fh.write(packed)
                fh.flush()
                unpack(fh.name, dest, f"local project {inp.name}")

        return _Source(hashlib.sha256(packed).hexdigest(), bs, unpack_local)
    if inp.pack is not None and inp.tree is not None and inp.pack_sha256 is not None:
        from ..snapshot.srcpack import unpack

        pyproject = inp.tree / "pyproject.toml"
        bs = parse_build_system(pyproject.read_text() if pyproject.is_file() else None,
                                f"{inp.name} (git)/pyproject.toml")
        pack = inp.pack

        def unpack_git(dest: Path) -> None:
            unpack(pack, dest, f"git source of {inp.name}")

        return _Source(inp.pack_sha256, bs, unpack_git)
    s = inp.sdist
    if s is None:  # pragma: no cover - make.py only passes packages with an sdist
        raise LockError(f"{inp.name} {inp.version} has no sdist to build from")
    path = fetch_to_store(store, s.filename, s.url, s.sha256, s.size)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != s.sha256:
        raise LockError(f"{s.filename}: the store object does not match its sha256", hint="run `envgen verify-store`")
    bs = sdist_build_system(data, s.filename)

    def unpack_archive(dest: Path) -> None:
        unpack_sdist(data, s.filename, dest)

    return _Source(s.sha256, bs, unpack_archive)


# --------------------------------------------------------------------------- the hook


def hook_key(source_sha: str, bs: BuildSystem, tools: list[pylock.PyPackage], python: str,
             interpreter: str, epoch: int) -> str:
    """Everything the hook's answer depends on: the source, its backend, the tools, the interpreter, the clock."""
    doc = {
        "v": HOOK_CACHE_VERSION, "source": source_sha, "backend": bs.backend, "backend-path": bs.backend_path,
        "python": python, "tools": sorted(w.sha256 for p in tools for w in p.wheels),
        "interpreter": interpreter, "source-date-epoch": epoch,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def run_hook(inp: SourceInput, src: _Source, tools: list[pylock.PyPackage], spec: Spec, store,
             root: Callable[[], Path], interpreter: str) -> list[str]:
    """``get_requires_for_build_wheel({})`` of *inp*'s backend, offline in bwrap (answers cached).

    *interpreter* is :func:`interpreter_key` of the .debs that *root* unpacks.
    """
    from ..sandbox import Bind, Sandbox

    bs = src.build_system
    key = hook_key(src.sha256, bs, tools, spec.python, interpreter, spec.snapshot_epoch)
    cached = lock_cache() / "build-requires" / f"{key}.json"
    try:
        answer = json.loads(cached.read_text())
        if isinstance(answer, list) and all(isinstance(r, str) for r in answer):
            return answer
    except (OSError, ValueError):
        pass
    wheels = [w for p in tools for w in p.wheels]
    tdir = tools_dir(store, wheels)
    rootfs = root()
    with tempfile.TemporaryDirectory(prefix="envgen-hook-") as tmp:
        t = Path(tmp)
        (t / "src").mkdir()
        (t / "work").mkdir()
        src.unpack(t / "src")
        (t / "work" / "hook.py").write_text(HOOK_SCRIPT)
        sb = Sandbox(
            root=rootfs, writable_root=False, network=False,
            binds=[Bind(t / "src", f"/build/src/{inp.name}", writable=True),
                   Bind(t / "work", "/build/work", writable=True),
                   Bind(tdir, "/build/tools", writable=False)],
            env={"PYTHONPATH": "/build/tools", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
                 "SOURCE_DATE_EPOCH": str(spec.snapshot_epoch), "TMPDIR": "/tmp"},
            cwd=f"/build/src/{inp.name}",
        )
        argv = [f"/usr/bin/python{spec.python}", "/build/work/hook.py", f"/build/src/{inp.name}", bs.backend,
                json.dumps(bs.backend_path), "/build/work/requires.json"]
        try:
            proc = sb.run(argv, capture_output=True, text=True, timeout=HOOK_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise LockError(f"{inp.name} {inp.version}: get_requires_for_build_wheel of {bs.backend} "
                            f"ran over {HOOK_TIMEOUT} s") from None
        out = t / "work" / "requires.json"
        if proc.returncode != 0 or not out.is_file():
            tail = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            raise LockError(
                f"{inp.name} {inp.version}: the build backend {bs.backend} failed in get_requires_for_build_wheel "
                f"(offline, in the sandbox): {tail[-1] if tail else f'exit status {proc.returncode}'}",
                hint="name what the build needs in its pyproject.toml [build-system] requires")
        answer = json.loads(out.read_text())
    cached.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(cached, json.dumps(answer, sort_keys=True))
    return answer


# --------------------------------------------------------------------------- resolving


def _check_requirements(reqs: list[str], where: str) -> list[str]:
    for r in reqs:
        try:
            req = Requirement(r)
        except InvalidRequirement as exc:
            raise LockError(f"{where}: build requirement {r!r} is not PEP 508 ({str(exc).splitlines()[0]})") from None
        if req.url:
            raise LockError(f"{where}: build requirement {r!r} is a URL; only index requirements can be locked")
    return reqs


def _tools_what(name: str, reqs: list[str]) -> str:
    return f"the build requirements of {name} ({', '.join(reqs)})"


def start_local(uv: UvSession, name: str, directory: Path) -> None:
    """Start resolving a local project's static build requirements, which its ``pyproject.toml`` states.

    :func:`resolve_source_builds` then finds them resolved (or resolving) in *uv*.
    Anything unreadable is left for it to report.
    """
    pyproject = directory / "pyproject.toml"
    try:
        text = pyproject.read_text() if pyproject.is_file() else None
        static = _check_requirements(list(parse_build_system(text, str(pyproject)).requires), name)
    except (OSError, UnicodeDecodeError, LockError):
        return
    if static:
        uv.start_pylock(static, _tools_what(name, static))


def resolve_source_builds(spec: Spec, platform: str, inputs: list[SourceInput], store,
                          runtime_debs: Callable[[], list[pylock.DebPackage]],
                          convert: Callable[[dict, str], list[pylock.PyPackage]],
                          progress: Callable[[str], None] | None = None,
                          uv: UvSession | None = None) -> BuildResolution:
    """Lock the build environment of every input.

    *runtime_debs* gives the lock's Debian packages (it may wait for apt);
    *convert* turns a uv pylock into build tools (each with its one wheel);
    *uv* runs the resolutions (one may have been started already: see
    :func:`start_local`).
    """
    if uv is None:
        with UvSession(spec, platform) as own:
            return resolve_source_builds(spec, platform, inputs, store, runtime_debs, convert, progress, own)
    say = progress or (lambda msg: None)
    root_lock = threading.Lock()
    root_path: list[Path] = []

    def root() -> Path:
        with root_lock:
            if not root_path:
                say("unpacking the Debian interpreter for the build backends' hooks")
                root_path.append(interpreter_root(store, runtime_debs()))
            return root_path[0]

    def resolve_tools(reqs: list[str], inp: SourceInput) -> list[pylock.PyPackage]:
        return convert(uv.pylock(reqs, _tools_what(inp.name, reqs)), f"a build requirement of {inp.name}")

    def one(inp: SourceInput) -> tuple[pylock.SourceBuild, list[pylock.PyPackage]]:
        where = f"{inp.name} {inp.version or ''}".strip()
        src = _load_source(inp, spec, store)
        bs = src.build_system
        static = _check_requirements(list(bs.requires), where)
        tools = resolve_tools(static, inp) if static else []
        answer = run_hook(inp, src, tools, spec, store, root, interpreter_key(runtime_debs()))
        dynamic = _check_requirements(answer, f"{where} (hook)")
        if dynamic:
            tools = resolve_tools(sorted(set(static) | set(dynamic)), inp)
        requires = sorted(f"{p.name}=={p.version}" for p in tools)
        return pylock.SourceBuild(name=inp.name, version=inp.version, reason=inp.reason, backend=bs.backend,
                                  backend_path=list(bs.backend_path), requires=requires,
                                  source_sha256=inp.pack_sha256, source_size=inp.pack_size), tools

    if not inputs:
        return BuildResolution([], [])
    say(f"locking the build requirements of {len(inputs)} source build(s)")
    with ThreadPoolExecutor(max_workers=min(4, len(inputs))) as pool:
        results = list(pool.map(one, sorted(inputs, key=lambda i: i.name)))
    builds = [b for b, _ in results]
    tools: dict[tuple[str, str | None], pylock.PyPackage] = {}
    for _, ts in results:
        for p in ts:
            tools.setdefault((p.name, p.version), p)
    return BuildResolution(sorted(builds, key=lambda b: b.name), sorted(tools.values(), key=pylock.tool_key))
