"""envgen snapshot SPEC"""

from __future__ import annotations

import textwrap
import threading
from contextlib import contextmanager

from ..lock import load_lock_for
from ..snapshot import snapshot
from ..snapshot.store import open_store
from . import variant_option


def register(sub, parents, fmt):
    p = sub.add_parser(
        "snapshot",
        parents=parents,
        formatter_class=fmt,
        help="fetch every artifact of a lock into the store and print the snapshot id",
        description=textwrap.dedent(
            """\
            Put everything SPEC's lock names into the content-addressed store: the
            wheel of each PyPI package, every Debian .deb (runtime and build), the
            build-tool wheels, the local projects (packed as deterministic tars), the
            lock and the spec. Downloads run in parallel and are checked against the
            lock's sha256 while they stream; a mismatch keeps nothing.

            The snapshot manifest is written to the store's roots/ (so gc keeps its
            objects) and its sha256, the snapshot id, is printed. The same lock gives
            the same id on any machine. A second run downloads nothing; an interrupted
            run leaves no partial object, and the next one fetches only what is missing.
            """
        ),
        epilog="example:\n  envgen snapshot specs/abide.toml\n"
               "  envgen snapshot specs/abide.toml --store /tmp/store --json",
    )
    p.add_argument("spec", metavar="SPEC", help="a spec (its lock is read) or a pylock.*.toml")
    variant_option(p)
    p.add_argument("-j", "--jobs", type=int, default=8, metavar="N", help="parallel downloads (default 8)")
    p.add_argument("--with-sdists", action="store_true", help="also fetch the sdists recorded in the lock")
    p.set_defaults(func=run)


def progress_factory(ui):
    if not ui.interactive:
        return None

    @contextmanager
    def factory(total):
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        lock = threading.Lock()
        with Progress(TextColumn("fetching"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      TimeRemainingColumn(), console=ui.err, transient=True) as prog:
            task = prog.add_task("fetch", total=total)

            def advance(n):
                with lock:
                    prog.advance(task, n)

            yield advance

    return factory


def run(args, ui) -> int:
    spec, lock = load_lock_for(args.spec, ui, args.variant)
    store = open_store(args.store)
    res = snapshot(store, lock, spec.path if spec else None, with_sdists=args.with_sdists,
                   jobs=args.jobs, progress_factory=progress_factory(ui), note=ui.info)
    objs = res.manifest["objects"]
    roles: dict[str, int] = {}
    for o in objs:
        roles[o["role"]] = roles.get(o["role"], 0) + 1
    result = {
        "id": res.id,
        "name": res.manifest["name"],
        "store": str(store.root),
        "objects": len(objs),
        "roles": dict(sorted(roles.items())),
        "total_bytes": sum(o["size"] for o in objs),
        "fetched": len(res.fetched),
        "fetched_bytes": res.fetched_bytes,
        "present": res.present,
        "present_bytes": res.present_bytes,
        "local_added": res.local_added,
    }

    def human(out):
        ui.info(f"{result['objects']} objects ({result['total_bytes'] / 1e6:.1f} MB): fetched {result['fetched']} "
                f"({res.fetched_bytes / 1e6:.1f} MB), already present {res.present} "
                f"({res.present_bytes / 1e6:.1f} MB)")
        out.print(res.id)

    ui.emit(result, human)
    return 0
