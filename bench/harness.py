"""What every bench script shares: timing, medians, ratios, a fresh work dir/store, envgen as a subprocess,
and the results as JSON plus a markdown table row (docs/benchmarks.md).

The scripts import it as ``from harness import …`` (bench/ is the script's directory, so on sys.path).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
ENVGEN = [sys.executable, "-m", "envgen"]
T = TypeVar("T")


# ext4 without a journal (this machine's root filesystem) makes each new inode skip every free inode of its
# group freed in the last 60 s, or 360 s while that part of the inode table is not written out, which making
# files beside them keeps it (fs/ext4/ialloc.c, recently_deleted(); the check reads the cached inode table
# only).  Files made within minutes of a large deletion cost many times the usual system time: 17,000 of
# them took 8-19 s here, against 0.7-2.4 s otherwise.
RECENTLY_DELETED_S = 361.0


def quiet_filesystem(wait: bool = True) -> str:
    """Make sure that no deletion made before now slows the file creation of what follows: everything
    written out and the kernel's clean caches dropped (as root), else, with *wait*, a wait of
    RECENTLY_DELETED_S.  Says which, for the results."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return "caches dropped"
    except OSError:
        if not wait:
            return "synced"
        print(f"waiting {RECENTLY_DELETED_S:.0f} s: recent deletions slow file creation (not root: caches kept)",
              file=sys.stderr)
        time.sleep(RECENTLY_DELETED_S)
        return "waited"


def timed(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | Path | None = None) -> float:
    """Wall seconds of one run of ``cmd`` (output captured); a failure ends the bench with its stderr tail."""
    t0 = time.perf_counter()
    proc = subprocess.run(list(cmd), env=dict(env) if env is not None else None, cwd=cwd, capture_output=True,
                          text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd[:4]))} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return dt


def timed_call(fn: Callable[[], T]) -> tuple[float, T]:
    """Wall seconds of ``fn()`` and its result."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def timed_rss(cmd: Sequence[str]) -> dict[str, Any]:
    """Run ``cmd``: wall seconds, max RSS (MiB) of it and its waited-for children (wait4), exit status, output."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output = "".join(proc.stdout)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss of wait4 covers the process and all its descendants it waited for (KiB on Linux).
    return {"wall_s": wall, "max_rss_mib": usage.ru_maxrss / 1024.0, "rc": proc.returncode, "output": output}


def repeat(fn: Callable[[], float], n: int) -> list[float]:
    """``n`` measurements of ``fn`` (each returns seconds)."""
    return [fn() for _ in range(n)]


def medians(runs: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """The median of every non-empty series."""
    return {k: statistics.median(v) for k, v in runs.items() if v}


def ratios(med: Mapping[str, float], baseline: str, names: Sequence[str] | None = None) -> dict[str, float]:
    """``med[name] / med[baseline]``, the baseline measured in the same run."""
    return {n: med[n] / med[baseline] for n in (names or list(med)) if n in med}


def envgen(*args: str, cwd: str | Path | None = REPO, env: Mapping[str, str] | None = None) -> dict:
    """Run ``envgen ARGS --json``; its JSON result (a failure ends the bench)."""
    proc = subprocess.run([*ENVGEN, *args, "--json"], capture_output=True, text=True, cwd=cwd,
                          env=dict(env) if env is not None else None)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout)


@contextmanager
def workdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A fresh temporary directory, removed afterwards unless ``keep``."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    finally:
        if not keep:
            shutil.rmtree(d, ignore_errors=True)


def wheelhouse(store: Path, lock, work: Path) -> tuple[Path, Path]:
    """The lock's wheels, hard-linked from *store* into WORK/wheels, and WORK/req.txt, their hashed
    requirements: what uv and pip install from when a benchmark compares them with an envgen build."""
    from envgen.lock.export import requirements_txt

    wheels = work / "wheels"
    wheels.mkdir()
    for p in lock.packages:
        for w in p.wheels:
            os.link(store / "objects" / "sha256" / w.sha256, wheels / w.filename)
    text, _, _ = requirements_txt(lock)
    req = work / "req.txt"
    req.write_text(text)
    return wheels, req


def fresh_store(parent: Path, name: str = "store") -> Path:
    """A new, empty store directory under ``parent`` (envgen creates its layout on first use)."""
    d = parent / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def markdown_row(name: str, med: Mapping[str, float], baseline: str | None = None) -> str:
    """``| name | a 1.23 s | b 4.56 s (3.7× baseline) |``, one row for docs/benchmarks.md."""
    cells = []
    for k, v in med.items():
        cell = f"{k} {v:.2f} s"
        if baseline and baseline in med and k != baseline and med[baseline]:
            cell += f" ({v / med[baseline]:.2f}× {baseline})"
        cells.append(cell)
    return f"| {name} | " + " | ".join(cells) + " |"


def write_results(result: Mapping[str, Any], json_path: Path | None = None, *, name: str = "",
                  baseline: str | None = None) -> None:
    """Print the result as JSON (and write it to ``json_path``), and its markdown row on stderr."""
    text = json.dumps(result, indent=2, sort_keys=True, default=str)
    print(text)
    if json_path:
        Path(json_path).write_text(text + "\n")
    med = result.get("median_s")
    if name and isinstance(med, Mapping):
        print(markdown_row(name, med, baseline), file=sys.stderr)
