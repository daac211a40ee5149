"""envgen runs [show ID | comment ID TEXT | tag ID TAG]"""

from __future__ import annotations

import textwrap

from ..errors import EnvgenError
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

            --html DIR writes the records as a static site, to browse without a
            server or a network: an index of the runs (sortable, filterable by
            label, tag and env; the filter can be set in the address, e.g.
            index.html#tag=paper), one page per run (command, env and lock, code
            revision, inputs and outputs summarised, its reruns compared, the
            images it wrote), a page comparing each rerun with its original and
            each --compare pair (parameters, env digests, lock diff, output
            differences), and per --sweep a table and a plot of one result
            column against the parameter (SVG; matplotlib, the `plot` extra,
            else a table and a note). The same records give the same bytes.
            DIR is replaced whole, so it must be new, empty or an earlier site.

            A run's record is written before its command starts and completed
            when it ends, so a run is listed while it runs ("running" in the
            exit column), and a run whose envgen was killed (SIGKILL, a node
            lost) stays listed as "killed": no exit status, no outputs. `runs
            show` says what it holds.
            """
        ),
        epilog="examples:\n  envgen runs --tag paper\n  envgen runs show 20261121-2350\n"
        "  envgen runs --html site/ && xdg-open site/index.html\n"
        "  envgen runs --html site/ --sweep sweeps/clf --plot mean_test_accuracy\n"
        "  envgen runs --html site/ --compare 20261121-2350 20261122-0910\n"
        "  envgen runs comment 20261121-2350 'figure 2, left panel'\n  envgen runs tag 20261121-2350 paper",
    )
    p.add_argument("--tag", help="only runs with this tag")
    p.add_argument("--limit", type=int, help="at most this many, newest first (default: 50 listed, all in --html)")
    p.add_argument("--html", metavar="DIR", help="write the records site into DIR (replaced whole; see above)")
    p.add_argument("--sweep", action="append", default=[], metavar="SWEEP_DIR",
                   help="with --html: a page for this sweep, with its plot (repeatable)")
    p.add_argument("--plot", metavar="COLUMN", dest="plot_column",
                   help="with --sweep: the result column to plot against the parameter (default: the first mean_*)")
    p.add_argument("--compare", nargs=2, action="append", default=[], metavar=("A", "B"),
                   help="with --html: a page comparing runs A and B (repeatable; every rerun gets one anyway)")
    p.set_defaults(func=run_list)
    rs = p.add_subparsers(dest="runs_command", metavar="ACTION")
    s = rs.add_parser(
        "show", parents=parents, formatter_class=fmt, help="one record in full",
        description="One run's record. Long lists of inputs and outputs are summarised: how many files, their "
        "total size, the sha256 of the set (of its `sha256sum` listing, sorted by path) and the first few; "
        "--all lists them whole. --json always holds every entry, and the summaries.",
        epilog="examples:\n  envgen runs show 20261121-2350\n  envgen runs show 20261121-2350 --all\n"
        "  envgen runs show 20261121-2350 --json")
    s.add_argument("run_id", metavar="ID")
    s.add_argument("--all", action="store_true", help="list every input and output file")
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

    if args.html:
        return write_html(args, ui)
    if args.sweep or args.compare or args.plot_column:
        raise EnvgenError("--sweep, --plot and --compare go with --html DIR", hint="envgen runs --html site/ …")
    recs = _records(args).list(tag=args.tag, limit=args.limit or 50)
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


def write_html(args, ui) -> int:
    from ..site.build import write_site

    store = open_store(args.store)
    records = _records(args)
    recs = records.list(tag=args.tag, limit=args.limit)
    compares = [(records.resolve_id(a), records.resolve_id(b)) for a, b in args.compare]
    if args.plot_column and not args.sweep:
        raise EnvgenError("--plot names a column of a sweep's results; give the sweep with --sweep DIR")
    res = write_site(store, args.html, recs, args.sweep, compares, args.plot_column)
    ui.emit(res, lambda out: out.print(
        f"records site: {res['index']} ({res['runs']} runs, {len(res['compare_pages'])} comparisons, "
        f"{len(res['sweeps'])} sweeps)"))
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
    from ..run.summary import human_size, summarise_files, summary_line

    r = _records(args).get(args.run_id)
    st = status(r)
    summaries = {"inputs": summarise_files(r.inputs), "outputs": summarise_files(r.outputs)}

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
        for what, files in (("inputs", r.inputs), ("outputs", r.outputs)):
            s = summaries[what]
            out.print(f"  {what}:" + " " * (10 - len(what)) + summary_line(s))
            for e in (s["first"] if not args.all else [{"path": p, **i} for p, i in sorted(files.items())]):
                out.print(f"    {e['sha256'][:16]}…  {human_size(e['size']):>9}  {e['path']}")
            if s["more"] and not args.all:
                out.print(f"    … and {s['more']} more (`envgen runs show {r.id} --all` lists them)")
        if r.tags:
            out.print(f"  tags:      {', '.join(r.tags)}")
        for c in r.comments:
            out.print(f"  comment:   {c['created']}  {c['text']}")
        if r.rerun_of:
            out.print(f"  rerun of:  {r.rerun_of}")

    ui.emit({**r.as_dict(), "status": st, "summaries": summaries}, human)
    return 0


def run_comment(args, ui) -> int:
    run_id = _records(args).comment(args.run_id, args.text)
    ui.emit({"run": run_id, "comment": args.text}, lambda out: out.print(f"commented on {run_id}"))
    return 0


def run_tag(args, ui) -> int:
    run_id = _records(args).tag(args.run_id, args.tag_name)
    ui.emit({"run": run_id, "tag": args.tag_name}, lambda out: out.print(f"tagged {run_id} {args.tag_name}"))
    return 0
