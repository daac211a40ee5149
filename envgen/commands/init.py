"""envgen init [PATH …]"""

from __future__ import annotations

import textwrap


def register(sub, parents, fmt):
    p = sub.add_parser(
        "init",
        parents=parents,
        formatter_class=fmt,
        help="write a spec from a project's requirements.txt, pyproject.toml, environment.yml or Dockerfile",
        description=textwrap.dedent(
            """\
            Write a spec for an existing project, then lock it.

            PATH is a file, or a directory holding one of requirements.txt,
            requirements.in, pyproject.toml, environment.yml or Dockerfile (name the
            file when it holds several; several files are read together):

              requirements files  -r/-c includes, markers (kept), --hash pins (kept as
                                  exact pins: the lock re-derives the hashes from the
                                  index, and they are compared), -e PATH -> local
              pyproject.toml      the project becomes a `local` entry; --extra NAME adds
                                  an optional-dependency group; requires-python is kept to
              environment.yml     the pip: section, and conda packages that have a clear
                                  PyPI name (a small explicit table); every other one is
                                  printed with why, and listed in the spec
              Dockerfile          its `pip install` commands (files they name are found
                                  through COPY); FROM python:X.Y says the Python it had

            A VCS requirement on a branch, a tag or no ref moves, and is refused in one
            line: --pin NAME==VERSION replaces it with a PyPI release, or the URL can
            name a full 40-hex commit, which the spec keeps and `envgen lock` pins by
            content (the commit id and the sha256 of its source pack).

            The Python is the OS base's (the env runs on its interpreter): --python or
            --base chooses; otherwise the first base that satisfies requires-python,
            preferring the Python the image or conda env had.

            The snapshot date is today (00:00:00Z) unless --date gives one; --date auto
            takes the first midnight after the newest exact pin's file for the target
            was uploaded to the index, so that old pins still resolve.

            The spec goes to DIR/envgen.toml (or -o); an existing one is kept unless
            --force. The same files and options give the same bytes. Then the spec is
            locked as `envgen lock` does (--no-lock skips that); if the lock fails,
            nothing is written.
            """
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              envgen init                                   # the one known file in .
              envgen init requirements.txt --date auto      # date the spec by its pins
              envgen init pyproject.toml --extra test -o specs/myproj.toml
              envgen init environment.yml --no-lock         # see what maps, lock later
              envgen init Dockerfile --pin pykale==0.1.2    # a branch pinned to a release
              envgen init requirements.txt --python 3.13    # on debian/trixie
            """
        ),
    )
    p.add_argument("paths", metavar="PATH", nargs="*", default=["."],
                   help="a requirements file, pyproject.toml, environment.yml, Dockerfile, or a directory (default .)")
    p.add_argument("-o", "--output", metavar="SPEC", help="where to write the spec (default: DIR/envgen.toml)")
    p.add_argument("--date", metavar="D", help="snapshot date: YYYY-MM-DD, an RFC 3339 UTC time, or auto "
                                               "(default: today 00:00:00Z)")
    p.add_argument("--python", metavar="X.Y", help="the Python (that of an OS base: 3.11 bookworm, 3.13 trixie)")
    p.add_argument("--base", metavar="BASE", help="the OS base, e.g. debian/bookworm")
    p.add_argument("--name", help="the spec's name (default: the project's, else the directory's)")
    p.add_argument("--extra", metavar="NAME", action="append", default=[],
                   help="include this optional-dependency group of pyproject.toml (repeatable)")
    p.add_argument("--pin", metavar="NAME==VERSION", action="append", default=[],
                   help="replace what the files say about NAME with this release (repeatable)")
    p.add_argument("--no-lock", action="store_true", help="write the spec without locking it")
    p.add_argument("--force", action="store_true", help="overwrite an existing spec")
    p.set_defaults(func=run)


def run(args, ui) -> int:
    from ..init import Options, plan, write
    from .lock import lock_store

    opts = Options(paths=args.paths or ["."], output=args.output, date=args.date, python=args.python,
                   base=args.base, name=args.name, extras=args.extra, pins=args.pin, force=args.force)
    with ui.status("reading the project's files") as update:
        p = plan(opts, progress=update)
    for note in p.notes:
        ui.info(f"note: {note}")
    for o in p.omitted:
        ui.warn(f"not carried over: {o.line()}")
    with ui.status(f"locking {p.path}") as update:
        result, warnings = write(p, lock=not args.no_lock, progress=update, store=lock_store(args))
    for w in warnings:
        ui.warn(w)
    spec = p.spec
    data = {
        "spec": str(p.path),
        "name": spec.name,
        "snapshot_date": spec.snapshot_date.iso,
        "python": spec.python,
        "base": spec.os_base,
        "sources": p.draft.sources,
        "requirements": spec.requirements,
        "constraints": spec.constraints,
        "local": [lp.path for lp in spec.local],
        "from_source": spec.from_source,
        "not_carried": [{"what": o.what, "origin": str(o.origin), "reason": o.reason} for o in p.omitted],
        "notes": p.notes,
        "date_basis": p.date_basis,
        "lock": None if result is None else {
            "path": str(result.path), "python_packages": len(result.lock.packages),
            "debian_packages": len([d for d in result.lock.debian.packages if d.role == "runtime"]),
        },
        "warnings": warnings,
    }

    def human(out):
        out.print(f"{p.path} written: {spec.name}, Python {spec.python} on {spec.os_base}, snapshot "
                  f"{spec.snapshot_date.iso}; {len(spec.requirements)} requirements"
                  + (f", {len(spec.constraints)} constraints" if spec.constraints else "")
                  + (f", local: {', '.join(lp.path for lp in spec.local)}" if spec.local else "")
                  + (f"; {len(p.omitted)} not carried over (listed in the spec, with why)" if p.omitted else ""))
        if result is not None:
            out.print(f"{result.path} written: {len(result.lock.packages)} Python packages, "
                      f"{data['lock']['debian_packages']} Debian packages")
        else:
            out.print(f"not locked (--no-lock): envgen lock {p.path}")

    ui.emit(data, human)
    return 0
