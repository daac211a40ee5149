"""Shared test fixtures."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import REPO, missing_tools, require_tool, run_envgen  # noqa: F401  (one policy, re-exported)

# --------------------------------------------------------------------------- missing tools: one policy
# require_tool(*names) (tests/helpers.py): skip when a tool is missing here, fail when CI is set.


@pytest.fixture(autouse=True)
def _requires_tool_marker(request):
    """``@pytest.mark.requires_tool("podman", "umoci")``: require_tool before the test."""
    for mark in request.node.iter_markers("requires_tool"):
        require_tool(*mark.args, **mark.kwargs)


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec into tmp_path/specs/<name>.toml and return its path."""

    def _write(body: str, name: str = "demo") -> Path:
        d = tmp_path / "specs"
        d.mkdir(exist_ok=True)
        p = d / f"{name}.toml"
        p.write_text(textwrap.dedent(body))
        return p

    return _write


@pytest.fixture
def abide_checkout(tmp_path):
    """A copy of the ABIDE spec and the pipeline's pyproject, in the repo's relative layout."""
    (tmp_path / "specs").mkdir()
    shutil.copy(REPO / "specs" / "abide.toml", tmp_path / "specs" / "abide.toml")
    pipe = tmp_path / "pipelines" / "abide"
    pipe.mkdir(parents=True)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / "pipelines" / "abide" / f, pipe / f)
    (pipe / "abide_pipeline").mkdir()
    (pipe / "abide_pipeline" / "__init__.py").write_text('"""stub"""\n__version__ = "0.1.0"\n')
    return tmp_path


# --------------------------------------------------------------------------- store / snapshot / bundle fixtures


class FileServer:
    """A local HTTP server for tests: ``files`` maps URL paths to bytes.

    ``modes[path]`` changes how one file is served: ``"tamper"`` (other bytes),
    ``"drop"`` (half the bytes, then close), ``"stall"`` (half the bytes, then
    wait for ``release``), ``"slow"`` (a short pause first), ``"404"``.
    ``hits`` counts GET requests per path.
    """

    def __init__(self):
        import collections
        import http.server
        import threading

        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.hits = collections.Counter()
        self.stalled = threading.Event()
        self.release = threading.Event()
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                import time

                path = self.path
                srv.hits[path] += 1
                data = srv.files.get(path)
                mode = srv.modes.get(path, "")
                if data is None or mode == "404":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if mode == "tamper":
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                if mode == "slow":
                    time.sleep(0.3)
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                if mode in ("drop", "stall"):
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    if mode == "stall":
                        srv.stalled.set()
                        srv.release.wait(30)
                    self.close_connection = True
                    return
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.url + path

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = FileServer()
    yield srv
    srv.close()


def _blob(seed: str, size: int) -> bytes:
    import hashlib

    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{i}".encode()).digest()
        i += 1
    return bytes(out[:size])


@pytest.fixture
def synth_project(tmp_path, file_server):
    """A small project tree: tmp/proj/specs/{demo.toml,pylock.demo.toml} and tmp/proj/app (a local project).

    The lock names two wheels, one build-tool wheel, one runtime and one build .deb,
    all served by ``file_server``.  Returns a namespace with ``lock_path``, ``root``,
    ``artifacts`` ({url path: bytes}) and ``server``.
    """
    import datetime as dt
    import hashlib
    import types

    from envgen.lock import pylock

    root = tmp_path / "proj"
    (root / "specs").mkdir(parents=True)
    app = root / "app"
    (app / "demo_app").mkdir(parents=True)
    (app / "pyproject.toml").write_text('[project]\nname = "demo-app"\nversion = "0.1"\n')
    (app / "demo_app" / "__init__.py").write_text("VALUE = 1\n")
    (app / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(app / "run.sh", 0o775)
    (app / ".gitignore").write_text("*.log\nbuild/\n")
    (app / "debug.log").write_text("noise\n")
    (app / "build").mkdir()
    (app / "build" / "junk.txt").write_text("junk\n")
    (app / "demo_app" / "__pycache__").mkdir()
    (app / "demo_app" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0pyc")
    spec_text = 'name = "demo"\nsnapshot-date = 2025-05-08T00:00:00Z\npython = "3.11"\n'
    (root / "specs" / "demo.toml").write_text(spec_text)

    date = dt.datetime(2025, 5, 8, tzinfo=dt.UTC)
    arts: dict[str, bytes] = {}

    def art(kind, fn, size):
        data = _blob(fn, size)
        path = f"/files/{fn}"
        arts[path] = data
        url = file_server.add(path, data)
        return pylock.Artifact(kind, fn, url, hashlib.sha256(data).hexdigest(), len(data), date)

    pkgs = [
        pylock.PyPackage("alpha", "1.0", wheels=[art("wheel", "alpha-1.0-py3-none-any.whl", 300_000)],
                         sdist=art("sdist", "alpha-1.0.tar.gz", 5000), index="https://pypi.org/simple"),
        pylock.PyPackage("beta", "2.0", wheels=[art("wheel", "beta-2.0-py3-none-any.whl", 40_000)],
                         index="https://pypi.org/simple"),
        pylock.PyPackage("demo-app", "0.1", directory="../app"),
    ]
    tools = [pylock.PyPackage("flit-core", "3.12.0", wheels=[art("wheel", "flit_core-3.12.0-py3-none-any.whl", 9000)])]
    debs = []
    for name, role, size in (("libfoo1", "runtime", 20_000), ("busybox-static", "build", 7000)):
        a = art("deb", f"{name}_1.0_amd64.deb", size)
        debs.append(pylock.DebPackage(name, "1.0", "amd64", f"pool/main/x/{name}/{a.filename}", a.size, a.sha256,
                                      "debian", a.url, "", role))
    lock = pylock.Lock(
        name="demo", spec="demo.toml", spec_sha256=hashlib.sha256(spec_text.encode()).hexdigest(),
        snapshot_date=date, python="3.11", platforms=["linux-x86_64"], envgen_version="0.1.0", uv_version="0.13.0",
        index="https://pypi.org/simple", roots=["alpha", "beta"], packages=pkgs, build_tools=tools,
        debian=pylock.Debian("debian/bookworm", "amd64", ["libfoo1"], ["busybox-static"], [], debs),
        environments=[], requires_python="==3.11.*",
    )
    lock_path = root / "specs" / "pylock.demo.toml"
    lock_path.write_text(pylock.dumps(lock))
    return types.SimpleNamespace(root=root, lock_path=lock_path, artifacts=arts, server=file_server, app=app)


# --------------------------------------------------------------------------- a tiny built env (network)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    shutil.copytree(REPO / "tests" / "fixtures" / "tiny", root / "proj")
    spec = root / "proj" / "specs" / "tiny.toml"
    store = root / "store"
    run_envgen("lock", str(spec), check=True)
    run_envgen("snapshot", str(spec), "--store", str(store), check=True)
    built = json.loads(run_envgen("build", str(spec), "--store", str(store), "--json", check=True).stdout)
    return SimpleNamespace(root=root, spec=spec, store=store, built=built)




@pytest.fixture(scope="session")
def tiny_run(tiny, tmp_path_factory):
    """The id of one recorded run in the tiny env (inputs under data/, outputs under out/)."""
    d = tmp_path_factory.mktemp("tiny-run")
    (d / "data").mkdir()
    (d / "data" / "params.txt").write_text("seed=2\n")
    (d / "out").mkdir()
    proc = run_envgen("run", str(tiny.spec), "--store", str(tiny.store), "--json",
                      "--bind", f"{d / 'data'}:/data:ro", "--bind", f"{d / 'out'}:/out", "--label", "paper-fig1",
                      "--", "hello", "--out", "/out", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["run"]


@pytest.fixture(scope="session")
def abide(tmp_path_factory):
    root = tmp_path_factory.mktemp("abide-env")
    proj = root / "proj"
    (proj / "specs").mkdir(parents=True)
    shutil.copy(REPO / "specs" / "abide.toml", proj / "specs")
    shutil.copytree(REPO / "pipelines" / "abide", proj / "pipelines" / "abide",
                    ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.pyc", ".pytest_cache"))
    spec = proj / "specs" / "abide.toml"
    run_envgen("lock", str(spec), check=True)
    store = root / "store"
    first = json.loads(run_envgen("snapshot", str(spec), "--store", str(store), "--json", check=True).stdout)
    return SimpleNamespace(root=root, spec=spec, store=store, first=first)


