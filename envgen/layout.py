"""The environment tree's layout: the one home of the constants every builder, runtime and exporter shares.

Standard library only, and no imports from envgen: both builders' sandboxes load
this very file beside the assembler (``envgen/builders/assemble.py``; the Nix
side gets it from ``envgen/nix/lib/env.nix`` and ``wheel.nix``), so both lay out
the same tree from one source.
"""

ENV_PREFIX = "/opt/env"                       # the venv-style prefix on the Debian interpreter
DEFAULT_PATH = f"{ENV_PREFIX}/bin:/usr/local/bin:/usr/bin:/bin"
MOUNTPOINTS = ("proc", "dev", "tmp", "sys", "run", "home")   # empty in the tree; runtimes mount over them
ENVGEN_DIR = ".envgen"                        # /.envgen: the lock and snapshot manifest the tree came from
USER, UID = "envgen", 1000                    # the unprivileged user images run as
IMAGE_USER = f"{UID}:{UID}"
# Variables every run and image sees (a run's own and the spec's [run] env come on top).
BASE_ENV = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "TZ": "UTC"}
RUN_ENV = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
# Bytecode is compiled in (at most) this many fixed chunks of the sorted file list, each by
# a fresh interpreter: parallel, yet independent of the machine's core count.
COMPILE_CHUNKS = 8
COMPILE_CHUNK_FILES = 200  # a list of N files is compiled in min(8, N // 200) chunks (at least one)
COMPILE_BATCH_FILES = 400  # the units step compiles installed groups of wheels in batches of 400 files or more
COMPILE_EXCLUDE = ("/lib2to3/tests/data/", "/test/bad")


def site_packages(python: str) -> str:
    """The env's site-packages inside the tree, for Python ``3.X``."""
    return f"{ENV_PREFIX}/lib/python{python}/site-packages"


def etc_files() -> dict:
    """The /etc files the skeleton writes: {path relative to the root: text}."""
    return {
        "etc/passwd": (f"root:x:0:0:root:/root:/bin/sh\n{USER}:x:{UID}:{UID}:envgen:/home/{USER}:/bin/sh\n"
                       "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        "etc/group": f"root:x:0:\n{USER}:x:{UID}:\nnogroup:x:65534:\n",
        # mount points for the host's name resolution, bound over them by `run --network`
        "etc/hosts": "127.0.0.1 localhost\n::1 localhost\n",
        "etc/resolv.conf": "",
    }


def pyvenv_cfg(python_full: str) -> str:
    return f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {python_full}\n"
