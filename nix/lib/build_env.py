"""Finish an envgen tree inside the Nix sandbox, run by the tree's own Python.

env.nix has already unpacked the runtime .debs into $out.  This script does
what the embedded builder does after that, writing the same bytes:

1. the skeleton (mount points, /opt/env venv prefix, /etc/passwd, ...);
2. every locked wheel installed into /opt/env (PEP 427), with the metadata an
   installer writes (INSTALLER, REQUESTED, RECORD, console scripts) in the
   form uv writes it, so both builders give the same files;
3. each local project built into a wheel by its pinned flit_core (imported
   straight from the snapshot's wheel) and installed the same way;
4. unchecked-hash bytecode for the env and the standard library, in the same
   fixed chunks, with the store prefix stripped from the recorded file names;
5. /.envgen/pylock.toml and snapshot.json.

Standard library only; run with -I -B -S (no site, no bytecode writes).
Paths *inside* the tree (shebangs, pyvenv.cfg, pyc file names) are the
paths the tree has when it is mounted as / (/opt/env/...), never $out.
"""

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor

import importlib.util


def _load_layout():
    """envgen/layout.py, the tree layout both builders share (passed in by env.nix), imported by path."""
    spec = importlib.util.spec_from_file_location("envgen_layout", os.environ["layoutPy"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


layout = _load_layout()
OUT = os.environ["out"]
PY = os.environ["pythonVersion"]
ENV_PREFIX = layout.ENV_PREFIX
PREFIX = OUT + ENV_PREFIX
SITE = OUT + layout.site_packages(PY)
INTERPRETER = f"{ENV_PREFIX}/bin/python"
COMPILE_CHUNKS = layout.COMPILE_CHUNKS
COMPILE_EXCLUDE = layout.COMPILE_EXCLUDE


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    with open(path, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)


def skeleton():
    for d in layout.MOUNTPOINTS:
        os.makedirs(f"{OUT}/{d}", exist_ok=True)
    os.chmod(f"{OUT}/tmp", 0o1777)
    os.makedirs(f"{PREFIX}/bin", exist_ok=True)
    os.makedirs(SITE, exist_ok=True)
    os.symlink(f"/usr/bin/python{PY}", f"{PREFIX}/bin/python")
    os.symlink("python", f"{PREFIX}/bin/python3")
    os.symlink("python", f"{PREFIX}/bin/python{PY}")
    write(f"{PREFIX}/pyvenv.cfg", layout.pyvenv_cfg(os.environ["pythonFull"]))
    for rel, text in sorted(layout.etc_files().items()):
        write(f"{OUT}/{rel}", text)
    os.makedirs(f"{OUT}/home/{layout.USER}", exist_ok=True)
    os.makedirs(f"{OUT}/root", exist_ok=True)


# --------------------------------------------------------------------------- wheels (PEP 427)

SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import sys
from {module} import {import_name}
if __name__ == "__main__":
    if sys.argv[0].endswith("-script.pyw"):
        sys.argv[0] = sys.argv[0][:-11]
    elif sys.argv[0].endswith(".exe"):
        sys.argv[0] = sys.argv[0][:-4]
    sys.exit({func}())
"""


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def entry_points(text):
    """[(name, module, attr)] of console_scripts and gui_scripts."""
    out, section = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]").strip()
            continue
        if section in ("console_scripts", "gui_scripts") and "=" in line:
            name, value = (s.strip() for s in line.split("=", 1))
            value = value.split("[")[0].strip()
            module, _, attr = value.partition(":")
            out.append((name, module.strip(), attr.strip()))
    return out


def install_wheel(path, extra_files=None):
    """Unpack one wheel into /opt/env as uv does; *extra_files* {dist-info name: bytes} are added."""
    written = {}  # absolute path -> bytes

    def put(dest, data, mode):
        data = data.encode() if isinstance(data, str) else data
        write(dest, data, mode)
        written[dest] = data

    with zipfile.ZipFile(path) as zf:
        for zi in zf.infolist():  # directory entries (e.g. an empty NAME.libs/) are created as uv does
            if zi.is_dir() and not zi.filename.split("/")[0].endswith(".data"):
                os.makedirs(f"{SITE}/{zi.filename}", exist_ok=True)
        names = [i for i in zf.infolist() if not i.is_dir()]
        infos = sorted({n.filename.split("/")[0] for n in names if n.filename.split("/")[0].endswith(".dist-info")})
        if len(infos) != 1:
            raise SystemExit(f"{path}: expected one .dist-info directory, found {infos}")
        info = infos[0]
        data_dir = info[: -len(".dist-info")] + ".data"
        for zi in names:
            name = zi.filename
            if name == f"{info}/RECORD" or name in (f"{info}/RECORD.jws", f"{info}/RECORD.p7s"):
                continue
            data = zf.read(zi)
            executable = bool((zi.external_attr >> 16) & 0o111)
            if name.startswith(data_dir + "/"):
                _, category, rest = name.split("/", 2)
                if category in ("purelib", "platlib"):
                    dest = f"{SITE}/{rest}"
                elif category == "scripts":
                    dest = f"{PREFIX}/bin/{rest}"
                    if data.startswith(b"#!python"):
                        first, nl, tail = data.partition(b"\n")
                        data = b"#!" + INTERPRETER.encode() + nl + tail
                    executable = True
                elif category == "headers":
                    dist = info.split("-")[0]
                    dest = f"{PREFIX}/include/site/python{PY}/{dist}/{rest}"
                elif category == "data":
                    dest = f"{PREFIX}/{rest}"
                else:
                    raise SystemExit(f"{path}: unknown .data category {category}")
            else:
                dest = f"{SITE}/{name}"
            put(dest, data, 0o755 if executable else 0o644)
        eps = f"{SITE}/{info}/entry_points.txt"
        if os.path.exists(eps):
            with open(eps) as fh:
                for script, module, attr in entry_points(fh.read()):
                    import_name = attr.split(".")[0]
                    put(f"{PREFIX}/bin/{script}",
                        SCRIPT.format(python=INTERPRETER, module=module, import_name=import_name, func=attr), 0o755)
    put(f"{SITE}/{info}/INSTALLER", b"uv", 0o644)
    put(f"{SITE}/{info}/REQUESTED", b"", 0o644)
    for name, data in (extra_files or {}).items():
        put(f"{SITE}/{info}/{name}", data, 0o644)
    lines = [f"{os.path.relpath(p, SITE)},{record_hash(d)},{len(d)}" for p, d in written.items()]
    lines.append(f"{info}/RECORD,,")
    lines.sort(key=lambda line: line.rsplit(",", 2)[0])  # by path, as uv sorts
    write(f"{SITE}/{info}/RECORD", "".join(line + "\n" for line in lines))


def build_local(name, tar_path, build_wheels, work):
    """Build a local project with its pinned flit_core; return the wheel's path."""
    src = f"{work}/src/{name}"
    os.makedirs(src)
    with tarfile.open(tar_path) as tf:
        for m in tf.getmembers():  # Python 3.11.2 has no extraction filters: refuse what leaves the tree
            if m.name.startswith("/") or ".." in m.name.split("/") or not (m.isfile() or m.isdir()):
                raise SystemExit(f"{tar_path}: unsafe member {m.name}")
        tf.extractall(src)
    for w in build_wheels:
        sys.path.insert(0, w)  # a pure-Python wheel is importable as a zip
    dist = f"{work}/dist-{name}"
    os.makedirs(dist)
    cwd = os.getcwd()
    os.chdir(src)
    try:
        from flit_core import buildapi
        wheel = buildapi.build_wheel(dist)
    finally:
        os.chdir(cwd)
    return f"{dist}/{wheel}"


# --------------------------------------------------------------------------- bytecode


def compile_bytecode(work):
    files = []
    for d in (f"{ENV_PREFIX}/lib/python{PY}/site-packages", f"/usr/lib/python{PY}"):
        for dirpath, dirnames, filenames in os.walk(OUT + d):
            dirnames[:] = [n for n in dirnames if n != "__pycache__"]
            for fname in filenames:
                if fname.endswith(".py"):
                    path = "/" + os.path.relpath(os.path.join(dirpath, fname), OUT)
                    if not any(x in path for x in COMPILE_EXCLUDE):
                        files.append(path)
    files.sort()
    chunks = [files[i::COMPILE_CHUNKS] for i in range(COMPILE_CHUNKS)]
    lists = f"{work}/compile"
    os.makedirs(lists)
    for i, chunk in enumerate(chunks):
        write(f"{lists}/{i}.txt", "".join(OUT + p + "\n" for p in chunk))
    ld, libs = os.environ["ENVGEN_LD"], os.environ["ENVGEN_LIBS"]

    def one(i):
        # -s/-p: the pyc records /usr/lib/..., the path inside the tree, not $out/usr/lib/...
        return subprocess.run([ld, "--library-path", libs, f"{OUT}/usr/bin/python{PY}", "-B", "-S", "-m",
                               "compileall", "-q", "-f", "--invalidation-mode", "unchecked-hash",
                               "-s", OUT, "-p", "/", "-i", f"{lists}/{i}.txt"], capture_output=True, text=True)

    # absolute links (usr/lib/python3.X/sitecustomize.py -> /etc/...) resolve inside the tree when it is /;
    # here they are pointed into $out while compiling, then put back as they were
    relinked = {}
    for p in files:
        full = OUT + p
        if os.path.islink(full) and os.readlink(full).startswith("/"):
            relinked[full] = os.readlink(full)
            os.unlink(full)
            os.symlink(OUT + relinked[full], full)
    jobs = max(1, min(int(os.environ.get("NIX_BUILD_CORES") or 1) or os.cpu_count() or 1, COMPILE_CHUNKS))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        procs = list(pool.map(one, range(COMPILE_CHUNKS)))
    for proc in procs:
        if proc.returncode not in (0, 1):  # 1: some file did not compile (Python 2 test data), as installers allow
            raise SystemExit(f"compileall failed: {proc.stderr[-2000:]}")
    for full, target in relinked.items():
        os.unlink(full)
        os.symlink(target, full)


def main():
    work = os.path.join(os.environ.get("NIX_BUILD_TOP", "/build"), "envgen")
    os.makedirs(work)
    skeleton()
    write(f"{PREFIX}/.lock", b"")  # uv's lock file of the prefix, which the embedded builder's uv leaves behind
    for w in sorted(os.environ.get("wheels", "").split(), key=lambda p: os.path.basename(p)):
        install_wheel(w)
    build_wheels = os.environ.get("buildWheels", "").split()
    for name, tar in zip(os.environ.get("localNames", "").split(), os.environ.get("localSources", "").split()):
        wheel = build_local(name, tar, build_wheels, work)
        # what uv records for a project installed from a directory (/.build/src/NAME in the embedded builder)
        install_wheel(wheel, {"direct_url.json": ('{"url":"file:///.build/src/%s","dir_info":{}}' % name).encode(),
                              "uv_build.json": b"{}"})
    compile_bytecode(work)
    os.makedirs(f"{OUT}/{layout.ENVGEN_DIR}")
    shutil.copyfile(os.environ["lockFile"], f"{OUT}/{layout.ENVGEN_DIR}/pylock.toml")
    shutil.copyfile(os.environ["manifestFile"], f"{OUT}/{layout.ENVGEN_DIR}/snapshot.json")
    for p in (f"{OUT}/{layout.ENVGEN_DIR}/pylock.toml", f"{OUT}/{layout.ENVGEN_DIR}/snapshot.json"):
        os.chmod(p, 0o644)


if __name__ == "__main__":
    main()
