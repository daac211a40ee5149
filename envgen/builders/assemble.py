"""The in-sandbox half of every build: one program, run by the tree's own Python, for both builders.

Both builders prepare a root filesystem (the unpacked Debian .debs), make it
``/`` for this program (the embedded builder with bubblewrap, the Nix builder
with busybox ``unshare`` + ``pivot_root`` inside its sandbox, ``envgen/builders/enter.sh``), and run::

    python3.X -I -B -S /.build/assemble.py build-wheel|assemble|units /.build/plan.json

so the tree is written by the same code, at the same paths, with the same
environment, whichever builder runs it.  The network is cut in both.

``build-wheel``
    Build one source (a local project's tar or an sdist) into a wheel with its
    PEP 517 backend, in an isolated build environment made only of the pinned
    build-tool wheels, at the fixed path /build/src/NAME, with
    ``SOURCE_DATE_EPOCH`` at the snapshot date.  The root here is a build root
    (runtime plus build .debs: compilers and headers), never the env tree.
``assemble``
    Lay out the env prefix (envgen/layout.py), install every wheel of the
    wheelhouse directory (locked and built ones alike, in file-name order)
    with pypa ``installer``, compile unchecked-hash bytecode in fixed chunks, and write
    /.envgen: the whole tree at once (the Nix builder and a bundle's VERIFY.sh).
``units``
    The embedded builder's per-package install units: install the wheels
    no unit of the store holds yet into the tree (its Debian runtime and
    skeleton in place; the builder places the units it reuses meanwhile)
    and compile their bytecode (and the standard library's, if no unit
    holds it, from the start) with the same compiler, each group
    of wheels as soon as it is in; print ``INSTALLED`` and a group's wheels
    as each group is in, ``COMPILED`` and a chunk's files as each chunk is
    done.  The builder links each package's files into its unit as they
    become final, while the rest installs and compiles
    (envgen/builders/units.py).

Standard library only, plus the pinned ``installer`` and ``pyproject_hooks``
wheels named in the plan (imported from the wheel files themselves).
Keep it importable without envgen: it runs where envgen is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor

WORK = "/tmp/envgen-assemble"
# the units step's output, a line each: a group of wheels is in (their file names), compileall is done
# with a chunk (its files); each followed by a JSON list
INSTALLED = "envgen-assemble: installed"
COMPILED = "envgen-assemble: compiled"
SRC = "/build/src"  # where a source is built: fixed, so paths compiled into a wheel never vary


def load_layout(path: str):
    """envgen/layout.py, imported by path (it is bound or copied into the sandbox beside this file)."""
    spec = importlib.util.spec_from_file_location("envgen_layout", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fail(msg: str) -> None:
    sys.stderr.write(f"envgen assemble: {msg}\n")
    raise SystemExit(2)


def build_environ(plan: dict, extra_path: str = "") -> dict[str, str]:
    """The one environment every process of a build sees: nothing from the host."""
    path = "/usr/local/bin:/usr/bin:/bin"
    return {
        "PATH": f"{extra_path}:{path}" if extra_path else path,
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(plan["epoch"]),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PIP_NO_INDEX": "1",
    }


# --------------------------------------------------------------------------- installing wheels


def _tools(plan: dict):
    """pypa installer (and pyproject_hooks), imported straight from their pinned wheels."""
    for wheel in (plan["tools"]["installer"], plan["tools"]["pyproject_hooks"]):
        if wheel not in sys.path:
            sys.path.insert(0, wheel)
    import installer  # noqa: F401  (imported from the wheel on sys.path)


def install_wheels(plan: dict, wheels: list[str], scheme: dict[str, str], interpreter: str,
                   done=None) -> None:
    """Install *wheels* into *scheme* with pypa installer, wheels that cannot touch one path at once.

    A path that another wheel installed is refused, as installer refuses it, unless the bytes are
    the same: the NVIDIA CUDA wheels that torch needs each carry the same empty ``nvidia/__init__.py``.
    Wheels that could install a common path (:func:`install_groups`) are installed one after another
    in file-name order, as a whole group; groups that share nothing are installed side by side (the
    tree is the same either way: each wheel writes only its own files, and its RECORD).
    ``done(i, group)`` is called as each group is in (its index among the groups, its wheels): no other
    group writes where it did.
    """
    _tools(plan)
    import io

    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    class Destination(SchemeDictionaryDestination):
        def write_to_fs(self, scheme, path, stream, is_executable):
            within = getattr(self, "_path_with_destdir", None)  # installer >= 0.7; older ones have no destdir
            target = within(scheme, path) if within else os.path.join(self.scheme_dict[scheme], path)
            if not os.path.lexists(target) or os.path.islink(target) or not os.path.isfile(target):
                return super().write_to_fs(scheme, path, stream, is_executable)
            data = stream.read()
            with open(target, "rb") as fh:
                same = fh.read() == data and bool(os.stat(target).st_mode & 0o100) == bool(is_executable)
            if not same:
                raise FileExistsError(f"File already exists: {target}")
            os.unlink(target)  # the same bytes again: written anew, its RECORD entry as installer makes it
            return super().write_to_fs(scheme, path, io.BytesIO(data), is_executable)

    def group(i: int, paths: list[str]) -> None:
        for path in paths:
            destination = Destination(
                scheme, interpreter=interpreter, script_kind="posix", hash_algorithm="sha256",
                bytecode_optimization_levels=(),
            )
            with WheelFile.open(path) as source:
                install(source=source, destination=destination, additional_metadata={"INSTALLER": b"envgen\n"})
        if done is not None:
            done(i, paths)

    groups = install_groups(wheels, scheme)
    with ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, len(groups)))) as pool:
        list(pool.map(group, range(len(groups)), groups))  # the first failure is raised


def install_groups(wheels: list[str], scheme: dict[str, str]) -> list[list[str]]:
    """*wheels* in groups that share no path they could install, each in file-name order, largest first.

    Every file a wheel installs is mapped to where *scheme* puts it (the wheel's root and
    ``.data/purelib|platlib`` into site-packages, ``.data/scripts`` and console or GUI entry points
    into the scripts directory, ``.data/headers`` and ``.data/data`` under theirs), and claims the
    first component below the deepest scheme directory it falls in: a top-level name in
    site-packages, a script's name, the top of a data directory.  A data file that lands in
    site-packages or ``bin`` claims what a package or script there would.  Two wheels with a common
    claim go into one group.
    """
    from installer.utils import parse_entrypoints

    bases = sorted({scheme[k].rstrip("/") for k in ("purelib", "platlib", "scripts", "headers", "data")},
                   key=len, reverse=True)

    def claim(dest: str) -> tuple[str, str]:
        dest = os.path.normpath(dest)
        for base in bases:
            if dest.startswith(base + "/"):
                return base, dest[len(base) + 1:].split("/", 1)[0]
        return "", dest  # outside the scheme: installer refuses it; claimed whole

    parent = list(range(len(wheels)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[tuple[str, str], int] = {}
    sizes = []
    ordered = sorted(wheels)
    for i, path in enumerate(ordered):
        claims = set()
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                top, _, rest = name.partition("/")
                if top.endswith(".data") and rest:
                    where, _, sub = rest.partition("/")
                    if where in scheme and sub:
                        claims.add(claim(f"{scheme[where]}/{sub}"))
                    continue
                claims.add(claim(f"{scheme['purelib']}/{name}"))
                if top.endswith(".dist-info") and rest == "entry_points.txt":
                    text = zf.read(name).decode("utf-8")
                    claims.update(claim(f"{scheme['scripts']}/{ep[0]}") for ep in parse_entrypoints(text)
                                  if ep[3] in ("console", "gui"))
            sizes.append(sum(info.file_size for info in zf.infolist()))
        for c in claims:
            j = owner.setdefault(c, i)
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(ordered)):
        groups.setdefault(find(i), []).append(i)
    return [[ordered[i] for i in members]
            for members in sorted(groups.values(), key=lambda m: (-sum(sizes[i] for i in m), m[0]))]


def env_scheme(layout, python: str) -> dict[str, str]:
    prefix = layout.ENV_PREFIX
    return {
        "purelib": layout.site_packages(python),
        "platlib": layout.site_packages(python),
        "headers": f"{prefix}/include/site/python{python}",
        "scripts": f"{prefix}/bin",
        "data": prefix,
    }


# --------------------------------------------------------------------------- building a wheel


def _unpack_source(archive: str, dest: str) -> None:
    """Unpack a local-project tar (files at the top) or an sdist (one top directory, stripped) at *dest*."""
    os.makedirs(dest)
    if archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n and not n.endswith("/")]
            top = _common_top(names)
            for name in names:
                rel = name[len(top):] if top else name
                _check_rel(rel, archive)
                target = os.path.join(dest, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with zf.open(name) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        return
    with tarfile.open(archive) as tf:
        members = [m for m in tf.getmembers() if m.isfile() or m.isdir()]
        top = _common_top([m.name for m in members if m.isfile()])
        for m in members:
            name = m.name.rstrip("/")
            rel = name[len(top):] if top and name.startswith(top) else ("" if f"{name}/" == top else name)
            if rel in ("", "."):
                continue
            _check_rel(rel, archive)
            target = os.path.join(dest, rel)
            if m.isdir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            content = tf.extractfile(m)
            assert content is not None
            with content, open(target, "wb") as out:
                shutil.copyfileobj(content, out)
            os.chmod(target, 0o755 if m.mode & 0o111 else 0o644)


def _common_top(names: list[str]) -> str:
    """``pkg-1.0/`` when every name lies under that one directory (an sdist), else ``""``."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        return tops.pop() + "/"
    return ""


def _check_rel(rel: str, archive: str) -> None:
    parts = rel.split("/")
    if rel.startswith("/") or ".." in parts:
        fail(f"{archive}: member {rel!r} leaves the source tree")


def build_wheel(plan: dict) -> None:
    """Build ``plan["build"]`` into a wheel in ``plan["out"]``; print its file name."""
    b = plan["build"]
    name = b["name"]
    src = f"{SRC}/{name}"
    if os.path.exists(src):
        shutil.rmtree(src)
    _unpack_source(b["source"], src)
    site = f"{WORK}/buildenv-{name}"
    scheme = {k: f"{site}/{k}" for k in ("purelib", "platlib", "headers", "scripts", "data")}
    scheme["platlib"] = scheme["purelib"]
    install_wheels(plan, sorted(b["requires"], key=os.path.basename), scheme, plan["python_cmd"][0])
    _tools(plan)
    from pyproject_hooks import BuildBackendHookCaller

    env = build_environ(plan, extra_path=scheme["scripts"])
    env["PYTHONPATH"] = scheme["purelib"]

    def runner(cmd, cwd=None, extra_environ=None):
        full = dict(env)
        full.update(extra_environ or {})
        # -s: no user site; the env's own site-packages is never on the path (isolated build)
        subprocess.run([*plan["python_cmd"], "-s", *cmd[1:]], cwd=cwd, env=full, check=True,
                       stdout=sys.stderr)

    hooks = BuildBackendHookCaller(src, b["backend"], backend_path=b.get("backend_path") or None,
                                   runner=runner, python_executable=plan["python_cmd"][0])
    out = plan["out"]
    os.makedirs(out, exist_ok=True)
    try:
        wheel = hooks.build_wheel(out, {})
    except subprocess.CalledProcessError as exc:
        fail(f"building {name} with {b['backend']} failed (exit status {exc.returncode}); its output is above")
    print(wheel)


# --------------------------------------------------------------------------- assembling the env


def skeleton(layout, python: str, python_full: str, root: str = "") -> None:
    """The per-tree part of the env: mount points, the prefix with its interpreter links and pyvenv.cfg,
    the /etc files, home directories.  *root* is where the tree lies ("" when it is ``/``)."""
    for d in layout.MOUNTPOINTS:
        os.makedirs(f"{root}/{d}", exist_ok=True)
    os.chmod(f"{root}/tmp", 0o1777)
    prefix = root + layout.ENV_PREFIX
    os.makedirs(f"{prefix}/bin", exist_ok=True)
    os.makedirs(root + layout.site_packages(python), exist_ok=True)
    for name, target in (("python", f"/usr/bin/python{python}"), ("python3", "python"),
                         (f"python{python}", "python")):
        if not os.path.lexists(f"{prefix}/bin/{name}"):
            os.symlink(target, f"{prefix}/bin/{name}")
    _write(f"{prefix}/pyvenv.cfg", layout.pyvenv_cfg(python_full))
    for rel, text in sorted(layout.etc_files().items()):
        _write(f"{root}/{rel}", text)
    os.makedirs(f"{root}/home/{layout.USER}", exist_ok=True)
    os.makedirs(f"{root}/root", exist_ok=True)


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o644)


def bytecode_sources(layout, tops: list[str], base: str = "") -> list[str]:
    """The in-tree paths of the .py files under *tops* that get bytecode, sorted.

    *base* is where the tree lies ("" when it is ``/``); exclusions match the in-tree path.
    """
    files: list[str] = []
    for top in tops:
        for dirpath, dirnames, filenames in os.walk(base + top):
            dirnames[:] = sorted(n for n in dirnames if n != "__pycache__")
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)[len(base):]
                if name.endswith(".py") and not any(x in path for x in layout.COMPILE_EXCLUDE):
                    files.append(path)
    files.sort()
    return files


# The compile server: one interpreter that has imported compileall (and what it needs to serve) forks a
# child per chunk, as many at once as there are cores (argv[1]).  Every child starts from the same state,
# as a fresh ``python -m compileall -i LIST`` would, less its start-up (40 ms with the standard library's
# pycs, 200 ms while they are being compiled).  Requests on stdin, a listing's path a line; for each
# chunk done, ``LISTING EXITCODE`` on stdout; a chunk's own output goes to LISTING.out.  Its strings
# are interned in every child, so a change here may change pycs (as any change to assemble.py changes
# the units' keys): keep it small.
COMPILE_SERVER = r"""
import compileall, os, select, signal, sys
from py_compile import PycInvalidationMode


def chunk(listing):
    out = os.open(listing + ".out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    ok = True
    with open(listing, encoding="utf-8") as fh:
        for line in fh:
            ok = compileall.compile_file(line.rstrip("\n"), force=True, quiet=1,
                                         invalidation_mode=PycInvalidationMode.UNCHECKED_HASH) and ok
    sys.stdout.flush()
    return 0 if ok else 1


def serve(jobs):
    wake, woken = os.pipe()
    os.set_blocking(woken, False)
    signal.set_wakeup_fd(woken)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    todo, running, rest, eof = [], {}, b"", False
    while todo or running or not eof:
        while todo and len(running) < jobs:
            listing = todo.pop(0)
            pid = os.fork()
            if pid == 0:
                code = 2
                try:
                    code = chunk(listing)
                except BaseException:
                    import traceback
                    traceback.print_exc()
                    sys.stderr.flush()
                os._exit(code)
            running[pid] = listing
        ready = select.select([wake] if eof else [wake, 0], [], [])[0]
        if 0 in ready:
            data = os.read(0, 65536)
            eof = not data
            *lines, rest = (rest + data).split(b"\n")
            todo += [line.decode() for line in lines]
        if wake in ready:
            os.read(wake, 4096)
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if not pid:
                break
            os.write(1, ("%s %d\n" % (running.pop(pid), os.waitstatus_to_exitcode(status))).encode())


serve(int(sys.argv[1]))
"""


class Compiler:
    """Unchecked-hash pycs by compileall, each chunk in a process of its own forked from one compile server
    (:data:`COMPILE_SERVER`), as many at once as there are cores: :meth:`submit` a sorted list of .py files
    (in-tree paths) as soon as they are final, and it is cut into a fixed number of interleaved chunks (a
    function of the list alone, never of the core count or of timing: a pyc depends only on its source
    and on the state of the compiling process, the same for every chunk); ``done(chunk)`` is called with
    each chunk's files, from one reader thread, once they are compiled.  Leaving the ``with`` block waits
    for every chunk and raises the first failure."""

    def __init__(self, plan: dict, layout, done=None):
        import threading

        self.chunk_files = layout.COMPILE_CHUNK_FILES
        self.max_chunks = layout.COMPILE_CHUNKS
        self.done = done
        self.lists = f"{WORK}/compile"
        os.makedirs(self.lists, exist_ok=True)
        self.chunks: dict[str, list[str]] = {}
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.server = subprocess.Popen([*plan["python_cmd"], "-B", "-c", COMPILE_SERVER, str(os.cpu_count() or 1)],
                                       env=build_environ(plan), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True, encoding="utf-8")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def submit(self, files: list[str]) -> None:
        # fewer chunks for a short list: each is a process to fork and a line to say
        n = max(1, min(self.max_chunks, len(files) // self.chunk_files))
        with self.lock:
            for i in range(n):
                # an empty list would make compileall compile everything on sys.path instead: none is run
                if files[i::n]:
                    listing = f"{self.lists}/{len(self.chunks)}.txt"
                    with open(listing, "w", encoding="utf-8") as fh:
                        fh.write("".join(p + "\n" for p in files[i::n]))
                    self.chunks[listing] = files[i::n]
                    assert self.server.stdin is not None
                    self.server.stdin.write(listing + "\n")
            assert self.server.stdin is not None
            self.server.stdin.flush()

    def _read(self) -> None:
        assert self.server.stdout is not None
        for line in self.server.stdout:
            listing, _, code = line.rstrip("\n").rpartition(" ")
            # 1 = some file did not compile (Python 2 test data a wheel ships), which installers tolerate too
            if int(code) not in (0, 1):
                with open(listing + ".out", encoding="utf-8", errors="replace") as fh:
                    self.failures.append(f"compileall failed (exit status {code}): {fh.read()[-2000:]}")
            elif self.done is not None and not self.failures:
                try:
                    with self.lock:
                        chunk = self.chunks[listing]
                    self.done(chunk)
                except BaseException as exc:  # the step's own output failing: stop saying, report it
                    self.failures.append(f"after compiling {listing}: {exc!r}")

    def __enter__(self) -> Compiler:
        return self

    def __exit__(self, failed, *_) -> None:
        assert self.server.stdin is not None
        if failed is not None:  # that failure is the one to report: the chunks not started are dropped
            self.server.kill()
            self.server.wait()
            return
        self.server.stdin.close()  # the server ends once every chunk is done
        self.reader.join()
        code = self.server.wait()
        if self.failures:
            fail(self.failures[0])
        if code != 0:
            fail(f"the compile server failed (exit status {code})")
        shutil.rmtree(self.lists)


def assemble(plan: dict) -> None:
    layout = load_layout(plan["layout"])
    python = plan["python"]
    skeleton(layout, python, plan["python_full"])
    interpreter = f"{layout.ENV_PREFIX}/bin/python"
    house = plan["wheelhouse"]
    wheels = sorted(f"{house}/{n}" for n in os.listdir(house) if n.endswith(".whl"))
    install_wheels(plan, wheels, env_scheme(layout, python), interpreter)
    with Compiler(plan, layout) as compiler:
        compiler.submit(bytecode_sources(layout, [layout.site_packages(python), f"/usr/lib/python{python}"]))
    d = f"/{layout.ENVGEN_DIR}"
    os.makedirs(d, exist_ok=True)
    shutil.copyfile(plan["lock"], f"{d}/pylock.toml")
    shutil.copyfile(plan["manifest"], f"{d}/snapshot.json")


# --------------------------------------------------------------------------- install units


def record_files(layout, python: str, dist_info: str) -> list[str]:
    """The in-tree paths of every file a wheel installed, from the RECORD installer wrote (RECORD included)."""
    import csv

    site = layout.site_packages(python)
    with open(f"{site}/{dist_info}/RECORD", newline="", encoding="utf-8") as fh:
        return sorted(os.path.normpath(f"{site}/{row[0]}") for row in csv.reader(fh) if row)


def units(plan: dict) -> None:
    """The embedded builder's install units, made in the tree: install the wheels of the wheelhouse (the
    ones no unit holds yet) as ``assemble`` does, and compile the bytecode of their files, and of the
    standard library when ``plan["stdlib"]``, by the same :class:`Compiler`.  The builder then moves
    each package's files (by its RECORD) and the standard library's pycs into their units.

    Nothing waits for what it does not need: the standard library compiles while the wheels install,
    and each group of wheels (:func:`install_groups`) prints ``INSTALLED`` and its wheels' file names
    as soon as it is in, and its .py files are compiled then, in batches of whole groups in group order
    (:class:`Batches`), while the other groups install.

    The bytecode is compileall's own: a pyc depends on the strings the compiling process holds interned
    (a frozenset constant is shared between code objects, or not, by it), so the units are compiled by
    the very program that compiles a whole tree (the compile server's children), never by a process
    that has imported anything else.
    """
    layout = load_layout(plan["layout"])
    python = plan["python"]
    house = plan["wheelhouse"]
    wheels = sorted(f"{house}/{n}" for n in os.listdir(house) if n.endswith(".whl"))
    say = _Say()
    site = layout.site_packages(python) + "/"
    with Compiler(plan, layout, done=lambda chunk: say(COMPILED, chunk)) as compiler:
        if plan.get("stdlib"):
            compiler.submit(bytecode_sources(layout, [f"/usr/lib/python{python}"]))
        batches = Batches(layout.COMPILE_BATCH_FILES, compiler.submit)

        def installed(i: int, group: list[str]) -> None:
            say(INSTALLED, [os.path.basename(p) for p in group])  # before any of its files is compiled
            from installer.sources import WheelFile  # on sys.path: install_wheels put it there

            files = []
            for path in group:
                with WheelFile.open(path) as source:
                    dist_info = source.dist_info_dir
                files += [f for f in record_files(layout, python, dist_info) if f.startswith(site)
                          and f.endswith(".py") and "/__pycache__/" not in f
                          and not any(x in f for x in layout.COMPILE_EXCLUDE)]
            batches.add(i, files)

        install_wheels(plan, wheels, env_scheme(layout, python), f"{layout.ENV_PREFIX}/bin/python", installed)
        batches.close()


class _Say:
    """One line to stdout per call (``WORD json``), whole, whichever thread says it."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()

    def __call__(self, word: str, value) -> None:
        with self.lock:
            print(word, json.dumps(value), flush=True)


class Batches:
    """Files that become final group by group, in any order, handed on in batches of whole groups in
    group order, each of at least *least* files (the last one what is left): what a batch holds is a
    function of the groups alone, whichever of them is done first."""

    def __init__(self, least: int, submit) -> None:
        import threading

        self.least, self.submit = least, submit
        self.lock = threading.Lock()
        self.done: dict[int, list[str]] = {}
        self.next = 0  # the first group not in a batch yet
        self.pending: list[str] = []

    def add(self, i: int, files: list[str]) -> None:
        with self.lock:
            self.done[i] = files
            while self.next in self.done:
                self.pending += self.done.pop(self.next)
                self.next += 1
                if len(self.pending) >= self.least:
                    self._flush()

    def close(self) -> None:
        with self.lock:
            assert not self.done, "a group after one that was never done"
            if self.pending:
                self._flush()

    def _flush(self) -> None:
        # once each: wheels of one group may install one path with the same bytes (nvidia/__init__.py)
        self.submit(sorted(set(self.pending)))
        self.pending = []


COMMANDS = {"build-wheel": build_wheel, "assemble": assemble, "units": units}


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in COMMANDS:
        fail("usage: assemble.py build-wheel|assemble|units PLAN.json")
    with open(argv[1], encoding="utf-8") as fh:
        plan = json.load(fh)
    os.makedirs(WORK, exist_ok=True)
    os.umask(0o022)
    COMMANDS[argv[0]](plan)


if __name__ == "__main__":
    main(sys.argv[1:])
