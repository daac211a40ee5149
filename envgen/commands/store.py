"""envgen store verify|roots|forget"""

from __future__ import annotations

import textwrap
from typing import Any

from ..errors import EnvgenError
from ..snapshot import load_root, parse_manifest
from ..snapshot.store import open_store


def register(sub, parents, fmt):
    p = sub.add_parser(
        "store",
        parents=parents,
        formatter_class=fmt,
        help="inspect and check the content-addressed store",
        description=textwrap.dedent(
            """\
            verify [ID]   rehash every object (or one snapshot's objects) and report each
                          one whose bytes no longer match its name, and missing ones;
                          exit 1 if any. --repair deletes the corrupt objects so the next
                          `envgen snapshot` fetches them again. Without ID, every install
                          unit too: its files against its listing (a chmod or an edit in
                          a tree changes the units it shares files with); --repair removes
                          the damaged units, which the next build makes again.
            roots         list the snapshot roots (gc keeps their objects)
            forget ID     drop a snapshot root (its objects go at the next `envgen gc`)
            """
        ),
        epilog="example:\n  envgen store verify\n  envgen store verify 3f1c...e9 --json",
    )
    ss = p.add_subparsers(dest="store_command", metavar="ACTION")
    v = ss.add_parser("verify", parents=parents, formatter_class=fmt, help="rehash objects, check install units")
    v.add_argument("id", nargs="?", metavar="SNAPSHOT_ID", help="check only this snapshot's objects")
    v.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                   help="hashing threads (default: CPUs, at most 8)")
    v.add_argument("--repair", action="store_true", help="delete corrupt objects and damaged units")
    v.set_defaults(func=run_verify)
    r = ss.add_parser("roots", parents=parents, formatter_class=fmt, help="list snapshot roots")
    r.set_defaults(func=run_roots)
    f = ss.add_parser("forget", parents=parents, formatter_class=fmt, help="drop a snapshot root")
    f.add_argument("id", metavar="SNAPSHOT_ID")
    f.set_defaults(func=run_forget)
    p.set_defaults(func=lambda args, ui: (p.print_help(), 2)[1])


def run_verify(args, ui) -> int:
    store = open_store(args.store)
    shas = None
    if args.id:
        doc = load_root(store, args.id)
        shas = [o["sha256"] for o in doc["objects"]]
    total = None
    if ui.interactive:
        names = set(shas) if shas is not None else set(store.iter_objects())
        total = sum(store.size_of(s) for s in names if store.has(s))
    if total:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        with Progress(TextColumn("verifying"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      console=ui.err, transient=True) as prog:
            task = prog.add_task("verify", total=total)
            rep = store.verify(shas, progress=lambda n: prog.advance(task, n), jobs=args.jobs, repair=args.repair)
    else:
        rep = store.verify(shas, jobs=args.jobs, repair=args.repair)
    units = [] if args.id else sorted(store.iter_units())  # the whole store: its install units too
    damaged = _damaged_units(store, units, ui, args.repair)
    ok = rep.ok and not damaged
    result = {"store": str(store.root), "snapshot": args.id, "checked": rep.checked, "bytes": rep.bytes,
              "corrupt": rep.corrupt, "missing": rep.missing, "units_checked": len(units), "damaged_units": damaged,
              "ok": ok, "repaired": bool(args.repair and (rep.corrupt or damaged))}

    def human(out):
        for s in rep.corrupt:
            out.print(f"corrupt  {s}" + ("  (deleted)" if args.repair else ""))
        for s in rep.missing:
            out.print(f"missing  {s}")
        for d in damaged:
            out.print(f"damaged  unit {d['key']}: {d['why']}" + ("  (removed)" if args.repair else ""))
        state = "ok" if rep.ok else f"{len(rep.corrupt)} corrupt, {len(rep.missing)} missing"
        out.print(f"checked {rep.checked} objects ({rep.bytes / 1e6:.1f} MB): {state}")
        if units:
            out.print(f"checked {len(units)} install units: " + (f"{len(damaged)} damaged" if damaged else "ok")
                      + ("; --repair removes them (the next build makes them again)" if damaged and not args.repair
                         else ""))

    ui.emit(result, human)
    return 0 if ok else 1


def _damaged_units(store, keys: list[str], ui, repair: bool) -> list[dict]:
    """The install units whose files are not what they were published as (a chmod or an edit in a tree that
    shares them); with *repair*, removed (the trees keep their files; the next build makes them again)."""
    from ..builders.units import damage
    from ..fsutil import remove_tree

    out = []
    with ui.status("checking the install units") as update:
        for i, key in enumerate(keys):
            update(f"checking the install units: {i + 1}/{len(keys)}")
            why = damage(store, key)
            if why is not None:
                out.append({"key": key, "why": why})
                if repair:
                    remove_tree(store.paths.unit(key))
    return out


def run_roots(args, ui) -> int:
    store = open_store(args.store)
    rows: list[dict[str, Any]] = []
    for name in store.list_roots():
        data = store.read_root(name) or b""
        try:
            doc = parse_manifest(data, str(store.root_path(name)))
        except EnvgenError:
            rows.append({"id": name, "kind": "unknown"})
            continue
        rows.append({"id": name, "kind": doc["kind"], "name": doc.get("name"),
                     "snapshot_date": doc.get("snapshot-date"), "objects": len(doc["objects"]),
                     "bytes": sum(int(o.get("size", 0)) for o in doc["objects"])})

    def human(out):
        for r in rows:
            if r["kind"] == "unknown":
                out.print(f"{r['id']}  (not a snapshot)")
            else:
                out.print(f"{r['id']}  {r['name']}  {r['snapshot_date']}  {r['objects']} objects,"
                          f" {r['bytes'] / 1e6:.1f} MB")

    ui.emit({"store": str(store.root), "roots": rows}, human)
    return 0


def run_forget(args, ui) -> int:
    store = open_store(args.store)
    if not _valid(args.id) or store.read_root(args.id) is None:
        raise EnvgenError(f"no root {args.id!r} in {store.root}", hint="list them with `envgen store roots`")
    store.remove_root(args.id)
    ui.emit({"forgotten": args.id}, lambda out: out.print(f"forgot {args.id}; run `envgen gc` to free its objects"))
    return 0


def _valid(name: str) -> bool:
    import re

    return bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", name))
