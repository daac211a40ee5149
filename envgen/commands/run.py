"""envgen run SPEC [--bind …] -- CMD…"""

from __future__ import annotations

import json
import sys

from ..cli import dedent
from ..runtimes.base import RUNTIMES
from . import variant_option


def register(sub, parents, fmt):
    p = sub.add_parser(
        "run",
        parents=parents,
        formatter_class=fmt,
        help="run a command inside the environment (bubblewrap), and record it",
        description=dedent(
            """\
            Build SPEC's environment if needed, then run CMD inside it, unprivileged:
            the tree read-only as /, fresh /proc, /dev and /tmp, no network unless
            --network, and only the declared --bind directories visible. The env's
            Python runs, never the host's. Output streams live; the exit status
            (or 128+signal) is passed through.

            With --json the command's own stdout goes to stderr, and stdout holds
            one JSON document describing the recorded run.

            Every run is recorded (see `envgen runs`): command, env identity
            (snapshot id, tree digest), sha256 of every input file under read-only
            binds and of every file the run wrote under writable binds (kept in the
            store), the git revision of the working directory, exit status, times
            and host facts. With no CMD, the spec's [run] command runs. The record
            is written before CMD starts and completed when it ends: a run whose
            envgen is killed shows as killed in `envgen runs`.

            --dry-run prints the command line that would run CMD (the sandbox
            itself: bwrap, podman or apptainer, with all its options) and runs
            and records nothing.
            """
        ),
        epilog=dedent(
            """\
            examples:
              envgen run specs/abide.toml -- python -c "import sklearn; print(sklearn.__version__)"
              envgen run specs/abide.toml --bind data:/data:ro --bind out:/out --label seed0 \\
                  -- abide-pipeline --input-dir /data --output-dir /out --random-state 0
              envgen run specs/tiny-gpu.toml --variant cuda12 --gpu -- nvidia-smi
            """
        ),
    )
    p.add_argument("spec", metavar="SPEC", help="a spec (its lock is read) or a pylock.*.toml")
    variant_option(p)
    p.add_argument("--bind", action="append", default=[], metavar="SRC:DST[:ro]",
                   help="make host SRC visible at DST inside the env (read-write unless :ro); repeatable")
    p.add_argument("--network", action="store_true", help="let the command reach the network (cut by default)")
    p.add_argument("--label", help="a short name for this run")
    p.add_argument("--reason", help="why this run was made")
    p.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    p.add_argument("--workdir", help="working directory inside the env (default: the spec's, else /)")
    p.add_argument("--runtime", default="bwrap", choices=sorted(RUNTIMES),
                   help="how to run: bwrap (default), nix (the Nix-built tree), podman (the OCI image), "
                        "sif (the SIF's squashfs under bwrap), apptainer (where installed)")
    p.add_argument("--gpu", action="store_true",
                   help="show the command the host's NVIDIA GPUs: the device nodes and the driver's libraries "
                        "(read-only, on LD_LIBRARY_PATH); podman uses CDI where set up, apptainer --nv; "
                        "no GPU on the host: an error, never the CPU instead")
    p.add_argument("--dry-run", action="store_true",
                   help="print the command line that would run (the sandbox's own argv); run nothing, record nothing")
    p.add_argument("cmd", nargs="*", metavar="CMD", help="the command and its arguments (after --)")
    p.set_defaults(func=run, fast_exit=True)


def run(args, ui) -> int:
    from ..run.execute import RunRequest, launch_argv, run_recorded
    from ..run.launch import report
    from ..runtimes import prepare
    from ..sandbox import Bind
    from ..snapshot.store import open_store

    gpu = None
    if args.gpu:  # before anything is built: no GPU is one line, exit 2
        from ..gpu import require

        gpu = require()
    store = open_store(args.store)
    binds = [Bind.parse(b) for b in args.bind]
    runtime, env, spec = prepare(store, args.spec, args.runtime, ui, args.variant)
    command = list(args.cmd) or (list(spec.command) if spec else [])
    if not command:
        from ..errors import RunError

        raise RunError("no command given and the spec has no [run] command", hint="envgen run SPEC -- CMD …")
    sys.stdout.flush()
    req = RunRequest.for_spec(command, binds, spec, args.spec, network=args.network, label=args.label,
                              reason=args.reason, tags=list(args.tag), workdir=args.workdir,
                              stdout_to_stderr=ui.json, gpu=gpu)
    if args.dry_run:
        argv = launch_argv(runtime, env, req)
        if ui.json:
            sys.stdout.write(json.dumps({"argv": argv, "runtime": runtime.name, "tree_digest": env.tree_digest},
                                        sort_keys=True) + "\n")
        else:
            import shlex

            sys.stdout.write(shlex.join(argv) + "\n")
        return 0
    rec = run_recorded(store, runtime, env, req)
    report(rec.__dict__, str(store.paths.records), ui.json, ui.quiet)
    return rec.exit_status or 0
