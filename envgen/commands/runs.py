"""envgen runs [show ID | comment ID TEXT | tag ID TAG]"""

from __future__ import annotations

import textwrap

from ..snapshot.store import open_store


def register(sub, parents, fmt):
    p = sub.add_parser(
        "runs",
        parents=parents,
        formatter_class=fmt,
        help="list and annotate the provenance records of past runs",
        description=textwrap.dedent(
            """\
            Every `envgen run` writes a provenance record (records.sqlite in the
            store). `envgen runs` lists them, newest first; the subcommands show one
            record in full or annotate it. A run id may be abbreviated to any
            unique prefix.

            A run's record is written before its command starts and completed
            when it ends, so a run is listed while it runs ("running" in the
            exit column), and a run whose envgen was killed (SIGKILL, a node
            lost) stays listed as "killed": no exit status, no outputs. `runs
            show` says what it holds.
            """
        ),
        epilog="examples:\n  envgen runs --tag paper\n  envgen runs show 20261121-2350\n"
        "  envgen runs comment 20261121-2350 'figure 2, left panel'\n  envgen runs tag 20261121-2350 paper",
    )
    p.add_argument("--tag", help="only runs with this tag")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.set_defaults(func=run_list)
    rs = p.add_subparsers(dest="runs_command", metavar="ACTION")
    s = rs.add_parser("show", parents=parents, formatter_class=fmt, help="one record in full")
    s.add_argument("run_id", metavar="ID")
    s.set_defaults(func=run_show)
    c = rs.add_parser("comment", parents=parents, formatter_class=fmt, help="add a comment to a record")
    c.add_argument("run_id", metavar="ID")
    c.add_argument("text", metavar="TEXT")
    c.set_defaults(func=run_comment)
    t = rs.add_parser("tag", parents=parents, formatter_class=fmt, help="tag a record")
    t.add_argument("run_id", metavar="ID")
    t.add_argument("tag_name", metavar="TAG")
    t.set_defaults(func=run_tag)


def _records(args):
    from ..run.records import Records

    store = open_store(args.store)
    return Records(store.paths.records)


def run_list(args, ui) -> int:
    from ..run.records import status

    recs = _records(args).list(tag=args.tag, limit=args.limit)
    states = [status(r) for r in recs]
    data = {"runs": [{**r.as_dict(), "status": st} for r, st in zip(recs, states, strict=True)]}

    def human(out):
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for col in ("id", "label", "exit", "secs", "in", "out", "tree", "command", "tags"):
            table.add_column(col)
        for r, st in zip(recs, states, strict=True):
            table.add_row(r.id, r.label or "", st if r.exit_status is None else str(r.exit_status),
                          "" if r.duration is None else f"{r.duration:.1f}", str(len(r.inputs)), str(len(r.outputs)),
                          (r.tree_digest or "")[:12], " ".join(r.command)[:60], ",".join(r.tags))
        out.print(table)

    ui.emit(data, human)
    return 0


def _status_line(r, st: str) -> str:
    """What an unfinished record holds, in words."""
    owner = r.owner or {}
    who = f"envgen (pid {owner.get('pid')}" + (f" on {owner['node']})" if owner.get("node") else ")")
    facts = ("its inputs and code revision were not recorded" if r.state == "starting"
             else "inputs and code revision recorded")
    return {
        "running": f"RUNNING: {who} is running it; {facts} so far",
        "killed": f"KILLED: {who} ended before the run did (killed?): no exit status, no outputs; {facts}",
        "abandoned": "ABANDONED: envgen stopped with an error after the command started: no exit status, no outputs",
        "incomplete": f"INCOMPLETE: not finished, and {who} cannot be checked from here; no exit status, no outputs",
    }.get(st, st)


def run_show(args, ui) -> int:
    from ..run.records import status

    r = _records(args).get(args.run_id)
    st = status(r)

    def human(out):
        out.print(f"run {r.id}" + (f"  ({r.label})" if r.label else ""))
        if st != "finished":
            out.print(f"  status:    {_status_line(r, st)}")
        if r.reason:
            out.print(f"  reason:    {r.reason}")
        out.print(f"  command:   {' '.join(r.command)}")
        out.print(f"  env:       {r.env_name}  runtime {r.runtime}, builder {r.builder}")
        out.print(f"  snapshot:  {r.snapshot_id}")
        out.print(f"  tree:      {r.tree_digest}")
        code = r.code or {}
        if code.get("vcs"):
            out.print(f"  code:      {code['commit']}" + (f" + uncommitted changes {code['changes_sha256'][:16]}…"
                                                          if code.get("dirty") else " (clean)"))
        if st == "finished":
            out.print(f"  started:   {r.started}  duration {r.duration} s  exit {r.exit_status}")
        else:
            out.print(f"  started:   {r.started}  ({st}: no duration, no exit status)")
        out.print(f"  host:      {r.host.get('cpu')}, {r.host.get('cores')} cores, kernel {r.host.get('kernel')}")
        for b in r.binds:
            out.print(f"  bind:      {b['src']} -> {b['dst']} ({b['mode']})")
        out.print(f"  inputs ({len(r.inputs)}):")
        for p, i in sorted(r.inputs.items()):
            out.print(f"    {i['sha256'][:16]}…  {p}")
        out.print(f"  outputs ({len(r.outputs)}):")
        for p, i in sorted(r.outputs.items()):
            out.print(f"    {i['sha256'][:16]}…  {p}")
        if r.tags:
            out.print(f"  tags:      {', '.join(r.tags)}")
        for c in r.comments:
            out.print(f"  comment:   {c['created']}  {c['text']}")
        if r.rerun_of:
            out.print(f"  rerun of:  {r.rerun_of}")

    ui.emit({**r.as_dict(), "status": st}, human)
    return 0


def run_comment(args, ui) -> int:
    run_id = _records(args).comment(args.run_id, args.text)
    ui.emit({"run": run_id, "comment": args.text}, lambda out: out.print(f"commented on {run_id}"))
    return 0


def run_tag(args, ui) -> int:
    run_id = _records(args).tag(args.run_id, args.tag_name)
    ui.emit({"run": run_id, "tag": args.tag_name}, lambda out: out.print(f"tagged {run_id} {args.tag_name}"))
    return 0
