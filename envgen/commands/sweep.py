"""envgen sweep SPEC --param … -- CMD;  envgen sweep status|collect|task DIR"""

from __future__ import annotations

import textwrap
from pathlib import Path

from ..errors import EnvgenError
from . import variant_option

ACTIONS = ("status", "collect", "task")


def register(sub, parents, fmt):
    p = sub.add_parser(
        "sweep",
        parents=parents,
        formatter_class=fmt,
        help="run a command over a parameter grid, locally or as a SLURM job array",
        description=textwrap.dedent(
            """\
            Expand a grid of --param values and run CMD once per point inside SPEC's
            environment. Each point gets its own output directory, bound at /out in
            the env; in CMD, {out} stands for it and {NAME} for a parameter's value.
            Each --param is also appended as `--NAME VALUE` unless CMD already uses
            its {NAME} placeholder. Every point is recorded like `envgen run`
            (tagged sweep:ID).

            --engine local runs the points in a bounded process pool (--jobs).
            --engine slurm writes one readable job-array script (DIR/sweep.sbatch,
            resubmittable by hand) and submits it with sbatch; resources come from
            the spec's [slurm] table or --time/--cpus-per-task/--mem/--partition/--gres.

            --variant NAME sweeps the spec's [variants.NAME] env (e.g. cuda12), and
            --gpu shows every point the GPUs of the host it runs on, as for
            `envgen run --gpu` (on SLURM, ask for them too: --gres gpu:1); a point
            on a host without a GPU fails, never runs on the CPU instead.

              envgen sweep status DIR [--resubmit-failed] [--wait SECONDS]
                  per-point state from the scheduler (squeue/sacct) and the records;
                  failed or timed-out points are listed with their log, and
                  --resubmit-failed reruns only those
              envgen sweep collect DIR [--plot COLUMN]
                  one row per point: its parameters and the numbers in the
                  metrics.json it wrote to {out} (DIR/collected.csv), and a plot
                  of one column (default: the first mean_* one) against the
                  parameters (DIR/collected.png; needs the envgen[plot] extra)
            """
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              envgen sweep specs/abide.toml --param random-state=0..9 --engine slurm \\
                  --bind data:/data:ro -- abide-pipeline --input-dir /data --output-dir {out}
              envgen sweep specs/abide.toml --param random-state=0..3 --param classifier=logistic,svm \\
                  --engine local --jobs 2 --bind data:/data:ro --out sweeps/clf \\
                  -- abide-pipeline --input-dir /data --output-dir {out} --write-metrics
              envgen sweep specs/tiny-gpu.toml --variant cuda12 --gpu --engine slurm --gres gpu:1 \\
                  --param seed=0..3 -- python train.py --out {out}
              envgen sweep status sweeps/clf --wait 600
              envgen sweep collect sweeps/clf --plot mean_test_accuracy
            """
        ),
    )
    p.add_argument("target", metavar="SPEC|status|collect", help="a spec to sweep, or an action on a sweep DIR")
    p.add_argument("rest", nargs="*", metavar="DIR", help="the sweep directory (for status/collect)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUES",
                   help="a grid axis: NAME=0..9 (inclusive range) or NAME=a,b,c; repeatable")
    p.add_argument("--engine", choices=["local", "slurm"], default="local", help="where to run (default: local)")
    variant_option(p)
    p.add_argument("--gpu", action="store_true",
                   help="show each point the host's NVIDIA GPUs, as `envgen run --gpu` does")
    p.add_argument("--runtime", default="bwrap", help="how each point runs (default: bwrap)")
    p.add_argument("--bind", action="append", default=[], metavar="SRC:DST[:ro]", help="as for envgen run")
    p.add_argument("--out", metavar="DIR", help="the sweep directory (default: sweeps/NAME-DATE)")
    p.add_argument("--jobs", type=int, default=2, help="local engine: points at once (default 2)")
    p.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                   help="slurm: wait up to SECONDS for the tasks to finish (also with status)")
    for flag in ("time", "cpus-per-task", "mem", "partition", "gres"):
        p.add_argument(f"--{flag}", dest=f"res_{flag.replace('-', '_')}", metavar="VALUE",
                       help=f"sbatch --{flag} (overrides the spec's [slurm] {flag})")
    p.add_argument("--resubmit-failed", action="store_true", help="with status: rerun the failed points only")
    p.add_argument("--plot", metavar="COLUMN", dest="plot_column",
                   help="with collect: the column to plot (default: the first mean_* column)")
    p.add_argument("cmd", nargs="*", help=argparse_suppress())
    p.set_defaults(func=run)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def run(args, ui) -> int:
    from ..sweep import engine as sw

    if args.target in ACTIONS:
        if not args.rest:
            raise EnvgenError(f"envgen sweep {args.target} needs the sweep directory")
        if args.target == "task":
            if len(args.rest) != 2 or not args.rest[1].isdigit():
                raise EnvgenError("usage: envgen sweep task DIR INDEX")
            return sw.run_task(args.rest[0], int(args.rest[1]))
        doc = sw.load(args.rest[0])
        if args.target == "status":
            return _status(doc, args, ui)
        return _collect(doc, args, ui)
    return _create(args, ui)


def _create(args, ui) -> int:
    from ..lock import load_lock_for
    from ..runtimes import prepare
    from ..sandbox import Bind
    from ..snapshot.store import open_store
    from ..sweep import engine as sw
    from ..sweep.grid import expand, parse_param

    expand([parse_param(p) for p in args.param])  # bad --param or an empty grid: fail before anything else
    if not args.cmd:
        raise EnvgenError("no command to sweep", hint="envgen sweep SPEC --param … -- CMD …")
    for b in args.bind:
        Bind.parse(b)
    if args.engine == "slurm":
        sw.check_slurm()
    elif args.gpu:  # the local engine runs every point here: no GPU here is one line, before anything is made
        from ..gpu import require

        require()
    spec, lock = load_lock_for(args.target, ui, args.variant)
    store = open_store(args.store)
    resources = dict(spec.slurm) if spec else {}
    for flag in sw.SBATCH_FLAGS:
        v = getattr(args, f"res_{flag.replace('-', '_')}", None)
        if v:
            resources[flag] = v
    binds = [Bind.parse(b).spec() for b in args.bind]
    doc = sw.create(spec.path if spec else Path(args.target), store.root, args.param, list(args.cmd), binds,
                    args.runtime, args.engine, Path(args.out) if args.out else None, resources, lock.name,
                    variant=args.variant, gpu=args.gpu)
    with ui.status("building the environment once for every point") as update:
        prepare(store, doc["spec"], args.runtime, variant=args.variant)
        update("")
    ui.info(f"sweep {doc['id']}: {len(doc['points'])} points in {doc['dir']}")
    if args.engine == "local":
        done = []

        def progress(i, rc):
            done.append(i)
            state = "completed" if rc == 0 else f"failed (exit {rc})"
            ui.info(f"  point {i} {state} [{len(done)}/{len(doc['points'])}]")

        sw.run_local(doc, list(range(len(doc["points"]))), args.jobs, progress)
        rows = sw.status(doc)
    else:
        try:
            job = sw.submit_slurm(doc)
        except EnvgenError:
            import shutil

            shutil.rmtree(doc["dir"], ignore_errors=True)  # nothing ran: leave no half-made sweep behind
            raise
        ui.info(f"submitted SLURM job array {job} ({doc['dir']}/sweep.sbatch)")
        rows = sw.wait(doc, args.wait) if args.wait else sw.status(doc)
    return _report(doc, rows, ui)


def _report(doc: dict, rows: list[dict], ui) -> int:
    data = {"sweep": doc["id"], "dir": doc["dir"], "engine": doc["engine"], "points": rows,
            "jobs": doc["jobs"], "counts": {s: sum(1 for r in rows if r["state"] == s) for s in
                                            sorted({r["state"] for r in rows})}}

    def human(out):
        for r in rows:
            params = " ".join(f"{k}={v}" for k, v in r["params"].items())
            extra = f" exit {r['exit_status']}" if r["exit_status"] not in (None, 0) else ""
            extra += f" run {r['run_id']}" if r["run_id"] else ""
            extra += f" ({r['error']})" if r.get("error") else ""
            if r["state"] == "failed" and r["log"]:
                extra += f"  log: {r['log']}"
            out.print(f"  [{r['index']}] {params:30} {r['state']}{extra}")
        out.print("  " + ", ".join(f"{n} {s}" for s, n in data["counts"].items()))

    ui.emit(data, human)
    return 1 if any(r["state"] == "failed" for r in rows) else 0


def _status(doc: dict, args, ui) -> int:
    from ..sweep import engine as sw

    if args.resubmit_failed:
        failed = sw.failed_indices(doc)
        if not failed:
            ui.info("no failed points")
        elif doc["engine"] == "slurm":
            job = sw.submit_slurm(doc, failed)
            ui.info(f"resubmitted points {failed} as SLURM job {job}")
        else:
            sw.run_local(doc, failed, args.jobs)
    rows = sw.wait(doc, args.wait) if args.wait else sw.status(doc)
    return _report(doc, rows, ui)


def _collect(doc: dict, args, ui) -> int:
    from ..sweep import engine as sw
    from ..sweep.collect import collect

    rows = sw.status(doc)
    res = collect(doc, rows, args.plot_column)

    def human(out):
        cols = res["columns"]
        out.print("  ".join(cols))
        for row in res["rows"]:
            out.print("  ".join(f"{row[c]:.4f}" if isinstance(row.get(c), float) else str(row.get(c, ""))
                                for c in cols))
        out.print(f"table: {res['csv']}" + (f"   plot: {res['plot']}" if res["plot"] else ""))
        if res["plot_hint"]:
            out.print(res["plot_hint"])

    ui.emit(res, human)
    return 0
