"""PyPI resolution with uv, frozen at the spec's snapshot date.

uv does the resolving; this module only drives it and reads back what it
wrote.  Three uv runs make one lock:

* the runtime set, as a PEP 751 ``pylock.toml`` (URLs, upload times, hashes);
* the base build tools (pypa ``installer``, ``packaging`` and
  ``pyproject-hooks``, which the builders' in-sandbox assembler imports), also
  as a pylock, run concurrently with the first;
* the runtime set again, offline from uv's now-warm cache, as an annotated
  ``requirements.txt`` whose ``# via`` comments give the dependency edges.

The first two run concurrently; the third follows the first (~0.2 s; running
it alongside measured no faster on two cores, and doubled the downloads).
Each source build's build requirements are resolved afterwards, the same way
(:func:`compile_pylock`), by :mod:`envgen.lock.buildreq`.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from ..distros import PLATFORMS
from ..errors import EnvgenError
from ..proc import run as run_tool
from ..spec import Spec

DEFAULT_INDEX = "https://pypi.org/simple"
# Build tools every lock carries, not tied to one source build: the builders' assembler
# installs wheels with pypa installer and drives PEP 517 backends with pyproject_hooks.
BASE_BUILD_TOOLS = ["installer", "packaging", "pyproject-hooks"]


def uv_bin() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:  # pragma: no cover - uv is a hard dependency
        raise EnvgenError("the uv package is not installed", hint="pip install uv") from None
    return find_uv_bin()


def uv_version() -> str:
    out = run_tool([uv_bin(), "--version"], "uv --version").stdout
    return out.split()[1]


def index_url() -> str:
    return os.environ.get("ENVGEN_INDEX_URL", DEFAULT_INDEX)


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

    def start(self, cwd: Path) -> UvJob:
        self.proc = proc = subprocess.Popen(
            self.cmd, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=_uv_env(),
        )
        assert proc.stdin is not None  # stdin=PIPE
        proc.stdin.write(self.stdin)
        proc.stdin.close()
        return self

    def wait(self, what: str) -> str:
        proc = self.proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None  # started, with pipes
        out = proc.stdout.read()
        err = proc.stderr.read()
        if proc.wait() != 0:
            raise EnvgenError(f"uv could not resolve {what}: {_clean_uv_error(err)}")
        return out


def _uv_env() -> dict[str, str]:
    env = dict(os.environ)
    # A user's uv configuration must not change what a spec locks to.
    for key in list(env):
        if key.startswith("UV_") and key not in ("UV_CACHE_DIR", "UV_NO_CACHE"):
            del env[key]
    env["NO_COLOR"] = "1"
    return env


def _common_args(spec: Spec, platform: str) -> list[str]:
    glibc = spec.distro.glibc
    plat = PLATFORMS[platform]
    return [
        "--no-config",
        "--default-index", index_url(),
        "--exclude-newer", spec.snapshot_date.iso,
        "--python-version", spec.python,
        "--python-platform", f"{plat.machine}-manylinux_{glibc[0]}_{glibc[1]}",
        "--quiet",
    ]


@dataclass
class Resolution:
    runtime: dict  # parsed pylock from uv
    build: dict  # parsed pylock of the base build tools
    parents: dict[str, list[str]]  # package -> the packages that require it
    uv_version: str


def resolve(spec: Spec, platform: str, cache_dir: str | None = None) -> Resolution:
    uv = uv_bin()
    common = _common_args(spec, platform)
    if cache_dir:
        common += ["--cache-dir", cache_dir]
    local = [f"./{Path(os.path.relpath(lp.dir, spec.dir)).as_posix()}" for lp in spec.local]
    runtime_in = "\n".join(spec.requirements + local) + "\n"
    build_in = "\n".join(BASE_BUILD_TOOLS) + "\n"
    with tempfile.TemporaryDirectory(prefix="envgen-lock-") as tmp:
        t = Path(tmp)
        (t / "rt").mkdir()
        (t / "bt").mkdir()
        rt_out = t / "rt" / "pylock.toml"
        bt_out = t / "bt" / "pylock.toml"
        constraints: list[str] = []  # the spec's constraints and [hold] pins restrict the runtime set only
        if spec.resolver_constraints():
            (t / "constraints.txt").write_text("\n".join(spec.resolver_constraints()) + "\n")
            constraints = ["-c", str(t / "constraints.txt")]
        jobs = [
            UvJob([uv, "pip", "compile", "-", "--format", "pylock.toml", "-o", str(rt_out)] + constraints + common,
                  runtime_in).start(spec.dir),
            UvJob([uv, "pip", "compile", "-", "--format", "pylock.toml", "-o", str(bt_out)] + common,
                  build_in).start(spec.dir),
        ]
        jobs[0].wait(f"the requirements of {spec.path}")
        annotated = UvJob([uv, "pip", "compile", "-", "--annotation-style", "line", "--no-header", "--offline"]
                          + constraints + common, runtime_in).start(spec.dir).wait("the dependency edges")
        jobs[1].wait(f"the build tools of {spec.path} ({build_in.strip().replace(chr(10), ', ')})")
        runtime = tomllib.loads(rt_out.read_text())
        build = tomllib.loads(bt_out.read_text())
    return Resolution(runtime=runtime, build=build, parents=parse_via(annotated), uv_version=uv_version())


def compile_pylock(spec: Spec, platform: str, requirements: list[str], what: str,
                   cache_dir: str | None = None) -> dict:
    """Resolve *requirements* as the runtime set is resolved (snapshot date, Python, platform); the parsed pylock."""
    common = _common_args(spec, platform)
    if cache_dir:
        common += ["--cache-dir", cache_dir]
    with tempfile.TemporaryDirectory(prefix="envgen-lock-") as tmp:
        out = Path(tmp) / "pylock.toml"
        UvJob([uv_bin(), "pip", "compile", "-", "--format", "pylock.toml", "-o", str(out)] + common,
              "\n".join(requirements) + "\n").start(Path(tmp)).wait(what)
        return tomllib.loads(out.read_text())


VIA_RE = re.compile(r"^(?P<req>\S+)\s+#\s+via\s+(?P<via>.*)$")


def parse_via(text: str) -> dict[str, list[str]]:
    """``name==1.0  # via a, b`` lines -> {name: [a, b]} (canonical names)."""
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
