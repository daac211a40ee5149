"""The ``envgen`` command line.  Thin: parse, call one function, render."""

from __future__ import annotations

import os
import sys

from . import __version__
from .errors import EnvgenError

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import argparse

# Command name -> module under envgen.commands.  Each module has
# ``register(subparsers, parents)`` and a ``run(args, ui)`` returning an exit code.
COMMANDS = {
    "init": "init",
    "update": "update",
    "lock": "lock",
    "graph": "graph",
    "why": "graph",
    "diff": "diff",
    "export-requirements": "export_requirements",
    "snapshot": "snapshot",
    "store": "store",
    "archive": "archive",
    "restore": "archive",
    "gc": "gc",
    "build": "build",
    "run": "run",
    "runs": "runs",
    "rerun": "rerun",
    "verify": "verify",
    "challenge": "challenge",
    "sweep": "sweep",
    "export": "export",
    "nix": "nix",
    "keygen": "sign",
    "sign": "sign",
    "gpu-check": "gpu_check",
}

def dedent(text: str) -> str:
    """textwrap.dedent for help texts, without importing textwrap (and its regexes) on every start-up."""
    lines = text.split("\n")
    indent = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
    return "\n".join(ln[indent:] if ln.strip() else "" for ln in lines)


DESCRIPTION = dedent(
    """\
    envgen: source-pinned, reproducible research environments.

    A spec (specs/NAME.toml) names what an environment needs. envgen freezes it
    at the spec's snapshot date into a lock (specs/pylock.NAME.toml, PEP 751)
    where every wheel and every Debian .deb is pinned by sha256.

    typical session:
      envgen init requirements.txt             a spec (envgen.toml) from a project's files, locked
      envgen lock specs/abide.toml             resolve and write the lock
      envgen graph specs/abide.toml            show the dependency tree
      envgen why specs/abide.toml threadpoolctl
                                               why is a package in the env?
      envgen diff old/pylock.abide.toml specs/pylock.abide.toml
                                               what changed between two locks
      envgen export-requirements specs/abide.toml -o requirements.txt
                                               a hashed requirements.txt for pip
      envgen update specs/abide.toml --dry-run what moving the snapshot date to today changes

    Every command takes --json for a machine-readable result on stdout.
    Errors are one line on stderr with exit status 2; with --json, stdout also
    gets {"error": {"type": CLASS, "message", "hint", ...}} (the type's fields).
    """
)


COMMON_DEFAULTS = {"json": False, "quiet": False, "store": None}


def help_formatter() -> type[argparse.HelpFormatter]:
    """argparse's formatter for envgen's help texts (argparse is imported only when a parser is made)."""
    import argparse

    class HelpFormatter(argparse.RawDescriptionHelpFormatter):
        def __init__(self, prog):
            # the width as argparse finds it (shutil.get_terminal_size), without importing shutil: argparse
            # makes a formatter for every add_argument, so every command would pay for that import
            try:
                width = int(os.environ["COLUMNS"])
            except (KeyError, ValueError):
                try:
                    width = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 80
                except (AttributeError, ValueError, OSError):
                    width = 80
            super().__init__(prog, max_help_position=32, width=(width or 80) - 2)

    return HelpFormatter


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (``only``) one with just that command's module loaded.

    Command modules import heavy libraries (networkx, rich progress, …); loading
    only the one that runs keeps start-up fast.
    """
    import argparse
    import importlib

    HelpFormatter = help_formatter()
    common = argparse.ArgumentParser(add_help=False, formatter_class=HelpFormatter)
    # SUPPRESS: nested subcommands (`runs show`) share these options, and argparse
    # would otherwise let a subparser's default overwrite a value given earlier.
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print one JSON document on stdout instead of text")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress or notes on stderr")
    common.add_argument(
        "--store", metavar="DIR", default=argparse.SUPPRESS,
        help="the content-addressed store (default: $ENVGEN_STORE, else $XDG_DATA_HOME/envgen/store)",
    )
    parser = argparse.ArgumentParser(prog="envgen", description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"envgen {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", title="commands")
    seen = set()
    for cmd, mod_name in COMMANDS.items():
        if (only and cmd != only) or mod_name in seen:
            continue
        seen.add(mod_name)
        mod = importlib.import_module(f"envgen.commands.{mod_name}")
        mod.register(sub, [common], HelpFormatter)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status.  Called as the program (*argv* None), a command that asks for it
    (``fast_exit``: `envgen run`, whose record is on disk by then) ends the process itself, skipping the
    interpreter's teardown of every module (a few ms of each run's overhead).

    A run that its launch plan serves whole is done by :func:`envgen.run.launch.main`, before argparse
    (or anything else it does not need) is imported; every other command line goes through argparse.
    """
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    quick = argv[:1] == ["run"]
    head = argv[:argv.index("--")] if "--" in argv else argv  # envgen's own options (an error is reported so)
    json_mode, quiet = quick and "--json" in head, quick and bool({"-q", "--quiet"} & set(head))
    ui = None
    try:
        if quick:
            from .run import launch

            code = launch.main(argv)
            if code is not None:
                return _end(code, as_program)
        args = _parse(argv)
        if args is None:
            return 2
        json_mode, quiet = args.json, args.quiet
        from .ui import UI

        ui = UI(json_mode=json_mode, quiet=quiet)
        code = int(args.func(args, ui) or 0)
        return _end(code, as_program and getattr(args, "fast_exit", False))
    except EnvgenError as exc:
        return _fail(exc, ui, json_mode, quiet)
    except OSError as exc:
        from .errors import NoSpace

        if exc.errno not in NoSpace.ERRNOS:
            raise  # anything else is a bug, with its traceback
        return _fail(NoSpace.of(exc), ui, json_mode, quiet)
    except KeyboardInterrupt:
        print("envgen: interrupted", file=sys.stderr)
        return 130


def _parse(argv: list[str]) -> argparse.Namespace | None:
    """*argv* parsed by the command's argparse parser (None: help was printed, the exit status is 2)."""
    first = argv[0] if argv else None
    parser = build_parser(first if first in COMMANDS else None)
    # Everything after the first `--` is the command to run inside the env, verbatim
    # (argparse cannot hold a trailing command with its own options reliably).
    trailing: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, trailing = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    if hasattr(args, "cmd"):
        args.cmd = trailing or list(args.cmd or [])
    elif trailing:
        parser.error(f"unexpected arguments after --: {' '.join(trailing)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return None
    return args


def _end(code: int, now: bool) -> int:
    """*code*; with *now*, the process ends here, its output flushed (no interpreter teardown)."""
    if now:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _fail(exc: EnvgenError, ui, json_mode: bool, quiet: bool) -> int:
    """Report *exc* through the command's UI (or, before there is one, a UI like it); its exit status."""
    if ui is None:
        from .ui import UI

        ui = UI(json_mode=json_mode, quiet=quiet)
    ui.error(exc)
    return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
