"""The demo's snapshot step, with its one fallback: re-lock a copy when pinned .debs are gone.

    python3 scripts/demo_snapshot.py SPEC OUTDIR [--envgen CMD]

Runs ``envgen snapshot SPEC --json``.  When it succeeds, prints a summary on
stderr and SPEC on stdout.  When it fails with a ``FetchError`` whose every
artifact is a Debian package that its mirror URL answered with an HTTP 4xx
(gone from the mirror, not a network failure) and that its snapshot.debian.org
URL could not serve either, the committed lock cannot be honoured here.  Then,
and only then, the spec and the local projects it names are copied under
OUTDIR/relock (same relative layout), that copy is locked and snapshotted,
one ``notice:`` line says which packages and that the env now differs from
the committed lock, and the copy's spec path goes to stdout.  The committed
spec and lock are never written.  Any other failure exits with envgen's status
(its one-line error is already on stderr).

Standard library only: it reads envgen's ``--json`` error document
(docs/formats.md), never its message text.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

DEBIAN_ROLES = ("deb", "build-deb")
MARKER = ".envgen-demo-relock"  # written into the copy's root, so that only such a directory is ever replaced
IGNORE = shutil.ignore_patterns(".venv", ".venv-*", "__pycache__", "*.pyc", ".pytest_cache", "*.egg-info", ".git")


def gone_debs(doc: object) -> list[str] | None:
    """The Debian packages of a failed ``envgen snapshot --json`` that a re-lock can replace, or None.

    Not None only for a ``FetchError`` where every artifact is a .deb whose first
    (mirror) URL gave an HTTP 4xx answer: the network works, the file is gone.
    """
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict) or err.get("type") != "FetchError":
        return None
    arts = err.get("artifacts")
    if not isinstance(arts, list) or not arts:
        return None
    names = set()
    for a in arts:
        if not isinstance(a, dict) or a.get("role") not in DEBIAN_ROLES:
            return None
        attempts = a.get("attempts")
        if not isinstance(attempts, list) or not attempts:
            return None
        status = attempts[0].get("status") if isinstance(attempts[0], dict) else None
        if not isinstance(status, int) or not 400 <= status < 500:
            return None
        names.add(str(a.get("package") or a.get("name")))
    return sorted(names)


class Refused(Exception):
    pass


def copy_project(spec: Path, dest: Path) -> Path:
    """Copy *spec* and its ``local`` projects under *dest*, keeping their relative layout; the copy's spec path.

    *dest* is replaced only if it is missing, empty, or an earlier copy (it holds MARKER).
    """
    spec = spec.resolve()
    try:
        doc = tomllib.loads(spec.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise Refused(f"{spec}: cannot read the spec: {exc}") from None
    local = doc.get("local", [])
    if not isinstance(local, list) or not all(isinstance(p, str) for p in local):
        raise Refused(f"{spec}: `local` is not a list of paths")
    dirs = [Path(os.path.normpath(spec.parent / p)) for p in local]
    root = Path(os.path.commonpath([str(spec.parent)] + [str(d) for d in dirs]))
    if dest.exists() and any(dest.iterdir()):
        if not (dest / MARKER).is_file():
            raise Refused(f"{dest} exists and is not an earlier re-lock copy; remove it or pick another OUTDIR")
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MARKER).write_text(f"a re-locked copy of {spec}; the committed lock is left alone\n")
    copy = dest / spec.relative_to(root)
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(spec, copy)
    for d in dirs:
        shutil.copytree(d, dest / d.relative_to(root), ignore=IGNORE, symlinks=True)
    return copy


def snapshot(envgen: list[str], spec: Path) -> tuple[int, object]:
    """``envgen snapshot SPEC --json``: (exit status, its JSON document or None); stderr passes through."""
    proc = subprocess.run([*envgen, "snapshot", str(spec), "--json"], stdout=subprocess.PIPE, text=True)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError:
        return proc.returncode, None


def summary(doc: dict) -> str:
    return (f"snapshot {doc['id']}: {doc['objects']} objects ({doc['total_bytes'] / 1e6:.1f} MB), fetched "
            f"{doc['fetched']} ({doc['fetched_bytes'] / 1e6:.1f} MB), already present {doc['present']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec", type=Path)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--envgen", default=".venv/bin/envgen", help="the envgen command (default: .venv/bin/envgen)")
    args = ap.parse_args(argv)
    envgen = shlex.split(args.envgen)

    rc, doc = snapshot(envgen, args.spec)
    if rc == 0 and isinstance(doc, dict):
        print(summary(doc), file=sys.stderr)
        print(args.spec)
        return 0
    gone = gone_debs(doc)
    if gone is None:
        return rc or 2
    dest = args.outdir / "relock"
    try:
        copy = copy_project(args.spec, dest)
    except Refused as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    print(f"notice: the pinned Debian package(s) {', '.join(gone)} are gone from the mirror and snapshot.debian.org "
          f"cannot serve them; re-locking a copy of {args.spec} in {dest} (the committed lock is left as it is): "
          f"this env differs from the committed lock", file=sys.stderr)
    lock = subprocess.run([*envgen, "lock", str(copy)], stdout=subprocess.DEVNULL)
    if lock.returncode != 0:
        return lock.returncode
    rc, doc = snapshot(envgen, copy)
    if rc != 0 or not isinstance(doc, dict):
        return rc or 2
    print(summary(doc), file=sys.stderr)
    print(copy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
