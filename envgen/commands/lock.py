"""envgen lock SPEC"""

from __future__ import annotations

import gc
import textwrap

REASONS = {"local": "local project", "no-wheel": "no wheel for the target",
           "from-source": "[build] from-source", "vcs": "git commit"}


def register(sub, parents, fmt):
    p = sub.add_parser(
        "lock",
        parents=parents,
        formatter_class=fmt,
        help="resolve a spec into specs/pylock.NAME.toml (PyPI + Debian, pinned by sha256)",
        description=textwrap.dedent(
            """\
            Resolve SPEC at its snapshot date and write specs/pylock.NAME.toml next to it.

            PyPI: uv resolves with --exclude-newer set to the snapshot date, for the
            spec's Python and platform; the lock keeps, per package, the wheel the
            target installs (plus the sdist), each with URL, upload time and sha256.
            Debian: apt resolves the closure of the OS base's python3.X (plus the
            spec's [os] packages) against the signed indices; each .deb is recorded
            with its pool filename, size, sha256, mirror URL and snapshot.debian.org URL.

            Source builds: a local project, a package without a wheel for the target,
            or one named in [build] from-source is built from its sdist. Its PEP 517
            build requirements ([build-system] requires, then what the backend's
            get_requires_for_build_wheel adds, run offline under bwrap) are pinned at
            the same date; compiled builds also pin gcc, libc6-dev and python3.X-dev
            (plus [os] build-packages) as Debian build packages.

            Git requirements: a requirement pinned to a full commit id,
            'pkg @ git+https://host/repo@<40-hex commit>[#subdirectory=sub]', is
            fetched (that commit only: git fetch --depth 1, else a full fetch), its
            tracked files packed deterministically (the local projects' packer), and
            locked by content: [packages.vcs] (url, commit-id) and the pack's sha256.
            It is then resolved and built like a local project. A branch or tag is
            refused in the spec; a commit the repository lacks is a one-line error.
            The pack is kept in the store (--store DIR, else the default one), as are
            the sdists, build tools and .debs a source build needs, so a re-lock
            fetches nothing.

            Variants: each [variants.NAME] of the spec (e.g. a CUDA build) is a whole
            env of its own, locked into pylock.SPECNAME.NAME.toml next to the default
            lock (which stays as it was); --variant NAME locks only that one. The
            other commands take --variant NAME to use it.

            Re-running on an unchanged spec (and unchanged indices) leaves the lock
            byte-identical. The lock is written atomically: on any error nothing changes.
            """
        ),
        epilog="examples:\n  envgen lock specs/abide.toml\n  envgen lock specs/abide.toml --json | jq .packages\n"
               "  envgen lock specs/tiny-gpu.toml --variant cuda12\n"
               "  # a spec requirement pinned to a commit, its sha256 in the lock:\n"
               "  #   \"pykale @ git+https://github.com/pykale/pykale@<40-hex commit>\"\n"
               "  envgen lock envgen.toml --json | jq '.source_builds[] | select(.reason == \"vcs\")'",
    )
    p.add_argument("spec", metavar="SPEC", help="the spec file, e.g. specs/abide.toml")
    p.add_argument("--variant", metavar="NAME",
                   help="lock only this [variants.NAME] of the spec (default: the default env and every variant)")
    p.set_defaults(func=run)


def run(args, ui) -> int:
    # uv's runtime resolution, the longest step, starts before the imports that validating the
    # spec needs; it is used only if the validated spec asks for exactly that run
    from ..lock.resolve import start_early

    early = start_early(args.spec)
    try:
        return _run(args, ui, early)
    finally:
        if early is not None:
            early.close()


def _run(args, ui, early) -> int:
    from ..lock.make import lock_spec
    from ..spec import load_spec

    base = load_spec(args.spec)
    specs = ([base.for_variant(args.variant)] if args.variant
             else [base] + [base.for_variant(v) for v in base.variants])

    def prepare_output() -> None:
        if not args.json:
            ui.out  # noqa: B018 - the console (rich) is set up while uv resolves, not after

    results = []
    for spec in specs:
        with ui.status(f"locking {spec.path}" + (f" (variant {spec.variant})" if spec.variant else "")) as update:
            results.append(lock_spec(spec, progress=update, idle=prepare_output, store=lock_store(args),
                                     early=early if spec.variant is None else None))
    summaries = [_summary(spec, result) for spec, result in zip(specs, results, strict=True)]
    for w in dict.fromkeys(w for result in results for w in result.warnings):  # each once (the Debian side is shared)
        ui.warn(w)
    doc = dict(summaries[0])
    if len(summaries) > 1:
        doc["variants"] = {s["variant"]: s for s in summaries[1:]}

    def human(out):
        for result, summary in zip(results, summaries, strict=True):
            _human(out, result, summary)

    ui.emit(doc, human)
    # The process ends here: spare the interpreter's last collections over all
    # that resolving left behind (~40 ms, a tenth of a warm lock's own time).
    gc.freeze()
    return 0


def lock_store(args):
    """The store --store names, for what locking fetches (git packs, sdists, build tools, .debs); None: the
    default store, made only if something is fetched."""
    if not args.store:
        return None
    from ..snapshot.store import open_store

    return open_store(args.store)


def _summary(spec, result) -> dict:
    lock = result.lock
    wheels = [w for p in lock.packages for w in p.wheels]
    runtime_debs = [d for d in lock.debian.packages if d.role == "runtime"]
    summary = {
        "spec": str(spec.path),
        "variant": spec.variant,
        "lock": str(result.path),
        "changed": result.changed,
        "snapshot_date": lock.snapshot_date.iso,
        "python_packages": len(lock.packages),
        "wheel_bytes": sum(w.size or 0 for w in wheels),
        "debian_packages": len(runtime_debs),
        "deb_bytes": sum(d.size for d in runtime_debs),
        "build_tools": sorted([p.name for p in lock.build_tools]
                              + [d.name for d in lock.debian.packages if d.role == "build"]),
        "source_builds": [{"name": b.name, "version": b.version, "reason": b.reason, "backend": b.backend,
                           "backend_path": b.backend_path, "requires": b.requires,
                           **({"source_sha256": b.source_sha256} if b.source_sha256 else {})}
                          for b in lock.source_builds],
        "warnings": result.warnings,
    }
    return summary


def _human(out, result, summary) -> None:
    lock = result.lock
    py_tools = sorted({f"{p.name} {p.version}" for p in lock.build_tools})
    build_debs = [d for d in lock.debian.packages if d.role == "build"]
    state = "written" if result.changed else "unchanged"
    out.print(
        f"{result.path} {state}: {summary['python_packages']} Python packages "
        f"({summary['wheel_bytes'] / 1e6:.1f} MB of wheels), {summary['debian_packages']} Debian packages "
        f"({summary['deb_bytes'] / 1e6:.1f} MB), build tools: {', '.join(py_tools)}; "
        f"{len(build_debs)} Debian build packages (roots: {', '.join(lock.debian.build_roots)})"
    )
    for b in lock.source_builds:
        out.print(f"  built from source: {b.name} {b.version or ''} ({REASONS.get(b.reason, b.reason)}; "
                  f"{b.backend}, {', '.join(b.requires) or 'no build requirements'})")
