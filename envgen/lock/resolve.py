"""PyPI resolution with uv, frozen at the spec's snapshot date.

uv does the resolving; this module only drives it and reads back what it
wrote.  A lock needs these uv runs (:class:`UvSession`), all overlapping the
longest, the runtime set's, which starts as soon as the spec is read; the
short ones start once the rest of envgen's start-up is done (started all at
once, they slowed the long one down on two cores, and their simultaneous DNS
queries got some dropped, which costs a 5 s retry):

* the runtime set, as a PEP 751 ``pylock.toml`` (URLs, upload times, hashes);
* the base build tools (pypa ``installer``, ``packaging`` and
  ``pyproject-hooks``, which the builders' in-sandbox assembler imports), also
  as a pylock;
* the ``[build-system] requires`` of each local project, which its
  ``pyproject.toml`` states before anything is resolved (sdists' build
  requirements are known only after the runtime set, and are resolved then,
  by :mod:`envgen.lock.buildreq`, through the same session);
* ``uv --version``.

Each run names envgen's own interpreter with ``--python`` when it is the
spec's Python (:func:`_interpreter_args`), which spares uv its discovery.

The dependency edges take one more run: the runtime set again, offline from
uv's now-warm cache, as an annotated ``requirements.txt`` whose ``# via``
comments give the edges (uv's pylock has no ``dependencies``).  That answer is
a function of the runtime resolution it annotates, so it is cached
(:func:`edges_key`): a re-lock whose resolution is unchanged runs no second
resolve, and gets the edges a fresh run would give.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..distros import DISTROS, PLATFORMS
from ..errors import EnvgenError
from ..paths import cache_dir

if TYPE_CHECKING:
    from ..spec import Spec

DEFAULT_INDEX = "https://pypi.org/simple"
# Build tools every lock carries, not tied to one source build: the builders' assembler
# installs wheels with pypa installer and drives PEP 517 backends with pyproject_hooks.
BASE_BUILD_TOOLS = ["installer", "packaging", "pyproject-hooks"]
EDGES_CACHE_VERSION = 1


@functools.cache
def uv_bin() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:  # pragma: no cover - uv is a hard dependency
        raise EnvgenError("the uv package is not installed", hint="pip install uv") from None
    return find_uv_bin()


def index_url() -> str:
    return os.environ.get("ENVGEN_INDEX_URL", DEFAULT_INDEX)


def lock_cache() -> Path:
    """Where locking keeps what only saves time (every entry keyed by all it depends on)."""
    return cache_dir() / "lock"


def _clean_uv_error(text: str) -> str:
    """uv's multi-line explanation, folded onto one line."""
    lines = []
    for line in text.splitlines():
        line = re.sub(r"^[\s×╰─▶│├]+", "", line).strip()
        if line and not line.startswith("hint: Pre-releases") and line not in lines:
            lines.append(line)
    return " ".join(lines)


@dataclass
class UvJob:
    cmd: list[str]
    stdin: str
    proc: subprocess.Popen[str] | None = None
    result: str | None = None
    error: str | None = None

    def start(self, cwd: Path) -> UvJob:
        self.proc = proc = subprocess.Popen(
            self.cmd, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=_uv_env(),
        )
        assert proc.stdin is not None  # stdin=PIPE
        try:
            proc.stdin.write(self.stdin)  # a requirement list: well within the pipe's buffer
            proc.stdin.close()
        except BrokenPipeError:
            pass  # uv exited at once; wait() reports why
        proc.stdin = None
        return self

    def wait(self, what: str) -> str:
        """uv's stdout (once; later calls give the same), or one line naming *what* could not be resolved."""
        if self.result is None and self.error is None:
            proc = self.proc
            assert proc is not None  # started
            out, err = proc.communicate()
            if proc.returncode != 0:
                self.error = _clean_uv_error(err)
            else:
                self.result = out
        if self.result is None:
            raise EnvgenError(f"uv could not resolve {what}: {self.error}")
        return self.result

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _uv_env() -> dict[str, str]:
    env = dict(os.environ)
    # A user's uv configuration must not change what a spec locks to.
    for key in list(env):
        if key.startswith("UV_") and key not in ("UV_CACHE_DIR", "UV_NO_CACHE"):
            del env[key]
    own = uv_cache_dir()
    if own is not None:
        env["UV_CACHE_DIR"] = str(own)
    env["NO_COLOR"] = "1"
    return env


def uv_cache_dir() -> Path | None:
    """envgen's own uv cache, ``$ENVGEN_CACHE/uv``; None when the user names one (``$UV_CACHE_DIR``,
    ``$UV_NO_CACHE``), which uv then uses as always.  Its own, because :func:`_index_args` keeps index pages
    in it longer than PyPI says, which other uv commands must not see."""
    if "UV_CACHE_DIR" in os.environ or "UV_NO_CACHE" in os.environ:
        return None
    return cache_dir() / "uv"


def _uv_args(snapshot_iso: str, python: str, platform: str, glibc: tuple[int, int], policy: bool = True) -> list[str]:
    """uv's arguments for resolving at *snapshot_iso*; *policy*: with :func:`_index_args`' cache policy (False:
    the run's identity, as in a cache key, which must not change with the state of uv's cache)."""
    plat = PLATFORMS[platform]
    return [
        "--no-config",
        *(_index_args(snapshot_iso) if policy else ["--default-index", index_url()]),
        "--exclude-newer", snapshot_iso,
        "--python-version", python,
        "--python-platform", f"{plat.machine}-manylinux_{glibc[0]}_{glibc[1]}",
        "--quiet",
    ]


def _common_args(spec: Spec, platform: str, policy: bool = True) -> list[str]:
    return _uv_args(spec.snapshot_date.iso, spec.python, platform, spec.distro.glibc, policy)


DAY_S = 86_400
# how long envgen's uv cache keeps a page of PyPI's index before uv asks for it again (PyPI says 10 minutes)
INDEX_PAGE_MAX_AGE_S = 7 * DAY_S
# PyPI's file URLs name their content (a hash in the path): what uv keeps of one never goes stale
PYPI_FILES_CACHE = "max-age=365000000, immutable"
PAGES_SINCE = ".envgen-pages-since"  # in envgen's uv cache: when it began keeping pages (epoch seconds)


@functools.cache
def _index_args(snapshot_iso: str) -> list[str]:
    """The index uv resolves from, and whether uv may answer from the pages it has: the time machine's rule.

    A lock sees only the files uploaded before its snapshot date, and a page
    of PyPI's simple index fetched a day or more after that date lists all of
    them (a day: for PyPI's CDN to serve an upload everywhere); no later fetch
    lists more of them.  uv asks PyPI again for every page older than ten
    minutes (PyPI's ``max-age``), which is most of a re-lock's time.  So, in
    envgen's own uv cache (:func:`uv_cache_dir`), a page is kept for
    :data:`INDEX_PAGE_MAX_AGE_S` and PyPI's content-addressed file URLs for
    good (an ``[[index]] cache-control``, in a config file: uv's command line
    has no such option).  uv sets that age on what it *stores*, so a page kept
    could be older than a later lock's snapshot date: every page fetched this
    way is fetched after the cache's :data:`PAGES_SINCE` stamp, and a lock
    whose snapshot date is not a day before the stamp has uv ask again for
    every page (``--refresh``, without the config, which uv lets override
    it), storing them with PyPI's own ten minutes.  A stamp made for a cache
    that holds pages already is dated back by the age above (any page kept
    was fetched after that).  Other indexes (``$ENVGEN_INDEX_URL``: their
    pages may lack upload times, their URLs may not name their content) and
    a uv cache the user names are used as uv uses them.  What a kept page
    cannot show is a yank made after it was fetched, for up to the age above
    (docs/reproducibility.md).  Computed once per process: the early run and
    the session that adopts it must agree.
    """
    import datetime as dt

    from ..fsutil import atomic_write

    url = index_url()
    own = uv_cache_dir()
    if url != DEFAULT_INDEX or own is None:
        return ["--default-index", url]
    stamp = own / PAGES_SINCE
    try:
        since = float(stamp.read_text())
    except (OSError, ValueError):
        since = dt.datetime.now(dt.UTC).timestamp()
        if own.is_dir() and any(own.iterdir()):
            since -= INDEX_PAGE_MAX_AGE_S
        try:
            atomic_write(stamp, f"{since:.0f}\n")
        except OSError:  # a read-only cache: uv as always
            return ["--default-index", url]
    if dt.datetime.fromisoformat(snapshot_iso.replace("Z", "+00:00")).timestamp() + DAY_S > since:
        return ["--default-index", url, "--refresh"]
    text = (
        "# written by envgen (envgen.lock.resolve._index_args): how long uv keeps what it fetched from PyPI\n"
        f"[[index]]\nurl = {json.dumps(url)}\ndefault = true\n"
        f"cache-control = {{ api = \"max-age={INDEX_PAGE_MAX_AGE_S}\", files = \"{PYPI_FILES_CACHE}\" }}\n"
    )
    config = lock_cache() / "uv-index" / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.toml"
    if not config.is_file():
        try:
            atomic_write(config, text)
        except OSError:
            return ["--default-index", url]
    return ["--config-file", str(config)]


def _interpreter_args(python: str) -> list[str]:
    """``--python`` envgen's own interpreter, when it is the spec's Python version.

    uv needs an interpreter only to build metadata from sources; the target is
    ``--python-version`` (its markers use the version's ``.0`` patch level) on
    ``--python-platform``.  Naming one spares uv its discovery, which runs the
    ``python3.X`` it finds on ``PATH`` (a pyenv shim is a chain of shell
    scripts: ~0.3 s per uv run).  Otherwise (another Python, or not CPython,
    whose implementation markers differ) uv discovers one, as before.
    """
    ours = f"{sys.version_info.major}.{sys.version_info.minor}"
    if ours == python and sys.implementation.name == "cpython" and sys.executable:
        return ["--python", sys.executable]
    return []


def _pylock_args(common: list[str]) -> list[str]:
    """A pylock run's arguments, all but its output file."""
    return ["pip", "compile", "-", "--format", "pylock.toml", *common]


ANNOTATED_ARGS = ["--annotation-style", "line", "--no-header", "--offline"]


@dataclass
class _Pylock:
    job: UvJob
    out: Path
    what: str
    parsed: dict | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class UvSession:
    """The uv runs of one lock: started when asked for, awaited when needed, all ended on close.

    A pylock run is keyed by its requirement list, so asking twice for the same
    list (two sources with the same build requirements, or a prestarted one)
    runs uv once.
    """

    spec: Spec
    platform: str
    early: EarlyRun | None = None  # the runtime run, started before the spec was validated
    _tmp: Path | None = None
    _pylocks: dict[tuple[tuple[str, ...], Path | None], _Pylock] = field(default_factory=dict)
    _others: list[UvJob] = field(default_factory=list)
    _version: UvJob | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # {index in the spec's requirements: what uv gets instead}: a git requirement as its fetched tree
    requirement_overrides: dict[int, str] = field(default_factory=dict)

    def __enter__(self) -> UvSession:
        self._tmp = Path(tempfile.mkdtemp(prefix="envgen-lock-"))
        return self

    def __exit__(self, *exc) -> None:
        for p in list(self._pylocks.values()):
            p.job.kill()
        for j in self._others:
            j.kill()
        for d in [self._tmp, *([self.early.tmp] if self.early and self.early.adopted else [])]:
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)

    @property
    def common(self) -> list[str]:
        return _common_args(self.spec, self.platform) + _interpreter_args(self.spec.python)

    def _job(self, args: list[str], stdin: str, cwd: Path) -> UvJob:
        common = self.common
        if "--offline" in args:  # from what this session's runs fetched: nothing to ask again
            common = [a for a in common if a != "--refresh"]
        job = UvJob([uv_bin(), "pip", "compile", "-", *args, *common], stdin).start(cwd)
        with self._lock:
            self._others.append(job)
        return job

    def constraint_args(self) -> list[str]:
        """``-c FILE`` of the spec's constraints and ``[hold]`` pins (they restrict the runtime set only)."""
        lines = self.spec.resolver_constraints()
        if not lines:
            return []
        assert self._tmp is not None, "use UvSession as a context manager"
        path = self._tmp / "constraints.txt"
        if not path.exists():
            path.write_text("\n".join(lines) + "\n")
        return ["-c", str(path)]

    def start_pylock(self, requirements: Sequence[str], what: str, cwd: Path | None = None,
                     constrained: bool = False) -> None:
        """Start resolving *requirements* as the runtime set is resolved (snapshot date, Python, platform)."""
        key = (tuple(requirements), cwd)
        args = _pylock_args(self.common) + (self.constraint_args() if constrained else [])
        stdin = "\n".join(requirements) + "\n"
        with self._lock:
            if key in self._pylocks:
                return
            early = self.early
            if early is not None and not early.adopted and cwd is not None and early.identity == (args, stdin, cwd):
                # the run started before the spec was validated is exactly this one: take it over
                early.adopted = True
                self._pylocks[key] = _Pylock(early.job, early.out, what)
                if self._version is None:
                    self._version = early.version
                    self._others.append(early.version)
                return
            assert self._tmp is not None, "use UvSession as a context manager"
            d = self._tmp / f"p{len(self._pylocks)}"
            d.mkdir()
            out = d / "pylock.toml"
            job = UvJob([uv_bin(), *args, "-o", str(out)], stdin).start(cwd or d)
            self._pylocks[key] = _Pylock(job, out, what)

    def pylock(self, requirements: Sequence[str], what: str, cwd: Path | None = None,
               constrained: bool = False) -> dict:
        """The parsed pylock of *requirements* (started now unless already started)."""
        self.start_pylock(requirements, what, cwd, constrained)
        p = self._pylocks[(tuple(requirements), cwd)]
        with p.lock:
            if p.parsed is None:
                p.job.wait(p.what)
                p.parsed = tomllib.loads(p.out.read_text())
            return p.parsed

    def start_version(self) -> None:
        with self._lock:
            if self._version is None:
                assert self._tmp is not None, "use UvSession as a context manager"
                self._version = UvJob([uv_bin(), "--version"], "").start(self._tmp)
                self._others.append(self._version)

    def version_text(self) -> str:
        """``uv --version``'s whole line (``uv 0.13.9 (…)``)."""
        self.start_version()
        assert self._version is not None
        return self._version.wait("its own version (uv --version)").strip()

    def version(self) -> str:
        return self.version_text().split()[1]

    def annotated(self, requirements_in: str, cwd: Path) -> str:
        """The runtime set again, offline from uv's warm cache, with ``# via`` annotations."""
        return self._job(ANNOTATED_ARGS + self.constraint_args(), requirements_in, cwd).wait("the dependency edges")


# --------------------------------------------------------------------------- the runtime set


def _runtime_in(requirements: list[str], local_dirs: list[Path], spec_dir: Path) -> str:
    local = [f"./{Path(os.path.relpath(d, spec_dir)).as_posix()}" for d in local_dirs]
    return "\n".join(requirements + local) + "\n"


def runtime_requirements(spec: Spec, overrides: dict[int, str] | None = None) -> str:
    """What uv is given for the runtime set: the spec's requirements, then its local projects.

    *overrides* replaces requirements by index (a git requirement by its fetched tree, a ``file://`` URL).
    """
    reqs = [(overrides or {}).get(i, r) for i, r in enumerate(spec.requirements)]
    return _runtime_in(reqs, [lp.dir for lp in spec.local], spec.dir)


@dataclass
class EarlyRun:
    """The runtime set's uv run (and ``uv --version``), started from the spec's TOML before it is validated.

    Validating a spec imports most of envgen, which takes longer than reading
    its TOML.  The session adopts this run only when the validated spec asks
    for exactly this run (arguments, input, directory); otherwise it is
    killed, and the lock is what it would have been without it.
    """

    identity: tuple[list[str], str, Path]
    job: UvJob
    out: Path
    tmp: Path
    version: UvJob
    adopted: bool = False

    def close(self) -> None:
        """Kill and remove what the session did not adopt."""
        if not self.adopted:
            self.job.kill()
            self.version.kill()
            shutil.rmtree(self.tmp, ignore_errors=True)


def start_early(spec_path: str | os.PathLike) -> EarlyRun | None:
    """Start the runtime run of the spec at *spec_path* as its TOML states it (None: nothing worth starting).

    Nothing here is trusted: :class:`UvSession` compares it with the run the
    validated spec needs.
    """
    import datetime as dt

    from ..clock import SnapshotDate

    try:
        path = Path(spec_path)
        raw = tomllib.loads(path.read_text())
        date = SnapshotDate.parse(raw["snapshot-date"])
        platforms = raw.get("platforms", ["linux-x86_64"])
        python = raw["python"]
        requirements = raw.get("requirements", [])
        local = raw.get("local", [])
        if any(isinstance(r, str) and "git+" in r for r in requirements):
            return None  # uv gets a git requirement as its fetched tree, which only the lock knows
        glibc = DISTROS[raw["os"]["base"]].glibc
        if (date > dt.datetime.now(dt.UTC) or not isinstance(platforms, list) or len(platforms) != 1
                or not isinstance(python, str) or not isinstance(requirements, list)
                or not all(isinstance(r, str) for r in requirements) or not isinstance(local, list)):
            return None
        common = _uv_args(date.iso, python, platforms[0], glibc) + _interpreter_args(python)
        stdin = _runtime_in(requirements, [(path.parent / lp).resolve() for lp in local], path.parent)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
    args = _pylock_args(common)
    tmp = Path(tempfile.mkdtemp(prefix="envgen-lock-"))
    (tmp / "early").mkdir()
    out = tmp / "early" / "pylock.toml"
    job = UvJob([uv_bin(), *args, "-o", str(out)], stdin).start(path.parent)
    version = UvJob([uv_bin(), "--version"], "").start(tmp)
    return EarlyRun((args, stdin, path.parent), job, out, tmp, version)


def _base_tools_what(spec: Spec) -> str:
    return f"the build tools of {spec.path} ({', '.join(BASE_BUILD_TOOLS)})"


def start(uv: UvSession) -> None:
    """Start the runtime set's uv run (the longest) and ``uv --version``."""
    spec = uv.spec
    uv.start_pylock(runtime_requirements(spec, uv.requirement_overrides).splitlines(),
                    f"the requirements of {spec.path}", spec.dir, constrained=True)
    uv.start_version()


def start_tools(uv: UvSession) -> None:
    """Start resolving the base build tools (short: started after :func:`start`, see :mod:`envgen.lock.make`)."""
    uv.start_pylock(BASE_BUILD_TOOLS, _base_tools_what(uv.spec))


@dataclass
class Resolution:
    runtime: dict  # parsed pylock from uv
    build: dict  # parsed pylock of the base build tools
    parents: dict[str, list[str]]  # package -> the packages that require it
    uv_version: str


def finish(uv: UvSession) -> Resolution:
    """The runtime set, its edges and the base build tools (what :func:`start` began, awaited)."""
    spec = uv.spec
    runtime_in = runtime_requirements(spec, uv.requirement_overrides)
    runtime = uv.pylock(runtime_in.splitlines(), f"the requirements of {spec.path}", spec.dir, constrained=True)
    key = edges_key(spec, uv.platform, runtime_in, runtime, uv.version_text())
    cached = lock_cache() / "edges" / f"{key}.txt" if key else None
    annotated = _read_cached(cached) if cached else None
    if annotated is None:
        annotated = uv.annotated(runtime_in, spec.dir)
        if cached:
            from ..fsutil import atomic_write

            atomic_write(cached, annotated)
    build = uv.pylock(BASE_BUILD_TOOLS, _base_tools_what(spec))
    return Resolution(runtime=runtime, build=build, parents=parse_via(annotated), uv_version=uv.version())


# --------------------------------------------------------------------------- the edges' cache


def _read_cached(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _static_dependencies(pyproject: bytes) -> bool:
    """Whether a local project's dependencies are in its ``pyproject.toml`` alone (PEP 621, not dynamic)."""
    try:
        proj = tomllib.loads(pyproject.decode()).get("project")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    if not isinstance(proj, dict):
        return False
    dynamic = proj.get("dynamic", [])
    return isinstance(dynamic, list) and not {"dependencies", "optional-dependencies"} & set(dynamic)


def edges_key(spec: Spec, platform: str, runtime_in: str, runtime: dict, version: str) -> str | None:
    """The key of the edges of *runtime* (uv's pylock of *runtime_in*), or None when they cannot be cached.

    uv's ``# via`` lines are a function of: uv's version; its arguments (index,
    snapshot date, Python, platform: the OS base's glibc); the interpreter it
    is given (markers such as ``implementation_name`` are the interpreter's);
    the requirements given; the packages resolved, each pinned by the hashes
    of its files, whose dependency metadata is immutable; and each local
    project's dependencies.  The key holds all of these.  Three cases fall
    back to running uv: uv discovers the interpreter itself (envgen's own is
    not the spec's Python); a local project's dependencies are not static in
    its ``pyproject.toml`` (a backend computes them); a package has no wheel
    for the target (uv builds its metadata from the sdist).
    """
    from .tags import best_wheel, supported_tags

    interpreter = _interpreter_args(spec.python)
    if not interpreter:
        return None
    plat = PLATFORMS[platform]
    tags = supported_tags(spec.python, plat.machine, spec.distro.glibc)
    for p in runtime.get("packages", []):
        if "directory" in p:
            continue
        names = [w.get("name") or w["url"].rsplit("/", 1)[-1] for w in p.get("wheels", [])]
        if best_wheel(names, tags) is None:
            return None
    local: dict[str, str] = {}
    for lp in spec.local:
        try:
            pyproject = (lp.dir / "pyproject.toml").read_bytes()
        except OSError:
            return None
        if not _static_dependencies(pyproject):
            return None
        local[Path(os.path.relpath(lp.dir, spec.dir)).as_posix()] = hashlib.sha256(pyproject).hexdigest()
    doc = {
        "v": EDGES_CACHE_VERSION, "uv": version, "args": _common_args(spec, platform, policy=False) + ANNOTATED_ARGS,
        "interpreter": [*interpreter, sys.version], "requirements": runtime_in, "resolution": runtime,
        "local": local, "constraints": spec.resolver_constraints(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


VIA_RE = re.compile(r"^(?P<req>\S+)\s+#\s+via\s+(?P<via>.*)$")


def parse_via(text: str) -> dict[str, list[str]]:
    """``name==1.0  # via a, b`` lines -> {name: [a, b]} (canonical names)."""
    from packaging.utils import canonicalize_name

    parents: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = VIA_RE.match(line.strip())
        if not m:
            continue
        req = m.group("req")
        name = req.split("==")[0] if "==" in req else None
        if name is None:
            continue
        via = [v.strip() for v in m.group("via").split(",")]
        parents[canonicalize_name(name)] = sorted(
            {canonicalize_name(v) for v in via if v and not v.startswith(("-r", "-c"))}
        )
    return parents
