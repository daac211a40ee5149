"""envgen archive SPEC -o BUNDLE; envgen restore BUNDLE [--into DIR]"""

from __future__ import annotations

import textwrap
from pathlib import Path

from ..archive import COMPRESSIONS, DEFAULT_COMPRESSION, is_bundle, read_manifest, restore_bundle, write_bundle
from ..archive.write import check_out
from ..errors import EnvgenError
from ..lock import load_lock_for
from ..snapshot import snapshot
from ..snapshot.store import is_sha256, open_store
from . import variant_option
from .snapshot import progress_factory


def register(sub, parents, fmt):
    a = sub.add_parser(
        "archive",
        parents=parents,
        formatter_class=fmt,
        help="write one self-contained, deterministic bundle of a snapshot",
        description=textwrap.dedent(
            """\
            Snapshot SPEC (fetching what the store lacks) and write BUNDLE: a tar
            holding the spec, the lock, every store object of the snapshot, the envgen
            source that made it, a manifest with every member's sha256, a CITATION.cff
            stub and a README on rebuilding offline. Entries are sorted, owned by 0:0,
            dated at the snapshot date; compression is single-threaded with fixed
            settings, so archiving twice gives byte-identical files.

            The bundle also carries envgen's own runtime, locked like any spec
            (envgen/selfhost/envgen.toml: its wheels, the Debian Python, bubblewrap, a
            static busybox; snapshotted into the same store, shared objects stored once)
            and VERIFY.sh, so that on an x86_64 Linux host with only sh, tar and
            coreutils, `tar -xf BUNDLE VERIFY.sh && sh VERIFY.sh BUNDLE` checks every
            member's sha256, bootstraps envgen from the bundle and runs `envgen verify`.
            That needs a plain .tar (or a .tar.gz); --without-envgen leaves it out.

            The manifest also names every source of the snapshot (sdists and local
            projects) by its Software Heritage id (SWHID), computed offline:
            swh:1:dir: of the tree the archive unpacks to, swh:1:cnt: of the archive
            file; CITATION.cff cites them. --swh-list prints them (one per line, the
            swh:1:dir: where there is one, then the source's name): the list to check
            against, or submit to, the Software Heritage archive. With --swh-list, SPEC
            may also be a bundle (its manifest is read) and -o is optional.

            SPEC may also be a snapshot id already in the store. BUNDLE is written
            atomically; an existing file that is not an envgen bundle is only replaced
            with --force.
            """
        ),
        epilog="example:\n  envgen archive specs/abide.toml --with-runs -o abide.tar\n"
               "  tar -xf abide.tar VERIFY.sh && sh VERIFY.sh abide.tar    # on any x86_64 Linux, no envgen\n"
               "  envgen archive specs/abide.toml -o abide.tar.zst          # smaller; needs zstd to read\n"
               "  envgen archive abide.tar --swh-list                       # the SWHIDs of its sources\n"
               "  envgen archive specs/abide.toml --swh-list --json         # both SWHIDs of each source",
    )
    a.add_argument("spec", metavar="SPEC", help="a spec, a pylock.*.toml, or a snapshot id")
    variant_option(a)
    a.add_argument("-o", "--output", metavar="BUNDLE", help="the bundle file to write (required without --swh-list)")
    a.add_argument("--compression", choices=COMPRESSIONS, default=None,
                   help=f"default: from BUNDLE's suffix (.tar.zst/.tar.gz/.tar.xz/.tar), else {DEFAULT_COMPRESSION}")
    a.add_argument("--level", type=int, default=None, help="compression level (default: zstd 3, gzip 9, xz 6)")
    a.add_argument("--force", action="store_true", help="overwrite BUNDLE even if it is not an envgen bundle")
    a.add_argument("-j", "--jobs", type=int, default=8, metavar="N", help="parallel downloads if fetching (default 8)")
    a.add_argument("--with-runs", action="store_true",
                   help="add the provenance records of this snapshot's runs, with their input and output files "
                        "(so `envgen verify` can rerun them); the env's tree digest goes in too")
    a.add_argument("--without-envgen", action="store_true",
                   help="leave out envgen's own runtime and VERIFY.sh (a smaller bundle; verifying it then needs "
                        "envgen installed)")
    a.add_argument("--run", action="append", default=[], metavar="ID",
                   help="with --with-runs: only these runs (repeatable; default: every run of this snapshot)")
    a.add_argument("--swh-list", action="store_true",
                   help="print the Software Heritage ids of the snapshot's sources (SPEC may be a bundle; "
                        "without -o, no bundle is written)")
    a.add_argument("--key", action="append", default=[], metavar="KEY",
                   help="sign the bundle's provenance and SBOM (attestations/*.dsse.json) with this ed25519 "
                        "private key (envgen keygen, or OpenSSH); repeatable; check with `envgen verify --key`")
    a.set_defaults(func=run_archive)

    r = sub.add_parser(
        "restore",
        parents=parents,
        formatter_class=fmt,
        help="check a bundle and load it into the store (and a work tree with --into)",
        description=textwrap.dedent(
            """\
            Check every member of BUNDLE against its manifest, then load the objects
            into the store and record the snapshot root. With --into DIR, also write
            the spec, the lock and the local projects at their relative paths under
            DIR, so `envgen snapshot DIR/specs/NAME.toml` works offline and prints the
            same snapshot id.

            Hostile or damaged bundles are refused (absolute or '..' paths, links,
            devices, duplicate names, content that disagrees with the manifest, a
            newer format); a refused bundle leaves the store and DIR untouched.
            """
        ),
        epilog="example:\n  envgen restore abide.tar.zst --into work\n  envgen snapshot work/specs/abide.toml",
    )
    r.add_argument("bundle", metavar="BUNDLE")
    r.add_argument("--into", metavar="DIR", default=None, help="write spec, lock and local projects under DIR")
    r.set_defaults(func=run_restore)


def _compression_for(path: str, explicit: str | None) -> str:
    if explicit:
        return explicit
    name = Path(path).name
    for suffix, comp in ((".zst", "zstd"), (".gz", "gzip"), (".tgz", "gzip"), (".xz", "xz"), (".tar", "none")):
        if name.endswith(suffix):
            return comp
    return DEFAULT_COMPRESSION


def run_archive(args, ui) -> int:
    from ..signing import load_signer

    if args.output is None and not args.swh_list:
        raise EnvgenError("envgen archive needs -o BUNDLE", hint="give the bundle file to write, or --swh-list")
    if args.swh_list and args.output is None and Path(args.spec).is_file() and is_bundle(args.spec):
        return _swh_list(read_manifest(args.spec).get("sources", []), ui, args.spec)
    signers = [load_signer(k) for k in args.key]  # a bad key: one line, before any work
    store = open_store(args.store)
    if is_sha256(args.spec) and store.read_root(args.spec) is not None and not Path(args.spec).exists():
        sid = args.spec
    else:
        spec, lock = load_lock_for(args.spec, ui, args.variant)
        sid = snapshot(store, lock, spec.path if spec else None, jobs=args.jobs,
                       progress_factory=progress_factory(ui), note=ui.info).id
    if args.output is None:
        from ..archive.write import bundle_sources
        from ..snapshot import load_root

        return _swh_list(bundle_sources(store, load_root(store, sid)), ui, sid)
    comp = _compression_for(args.output, args.compression)
    check_out(Path(args.output), args.force)
    env, runs = (None, None)
    if args.with_runs or args.run:
        from ..run.bundled import runs_for_bundle

        env, runs = runs_for_bundle(store, sid, args.run)
        ui.info(f"adding {len(runs)} recorded run(s) and their files")
    selfhost = None
    if not args.without_envgen:
        from ..selfhost import snapshot_selfhost

        selfhost = snapshot_selfhost(store, jobs=args.jobs, progress_factory=progress_factory(ui), note=ui.info)
    with ui.status(f"writing {args.output}"):
        res = write_bundle(store, sid, args.output, comp, args.level, args.force, env=env, runs=runs,
                           selfhost=selfhost, signers=signers)
    res["runs"] = [r["id"] for r in runs or []]
    if args.swh_list:
        return _swh_list(res["sources"], ui, res["bundle"])

    def human(out):
        ui.info(f"{res['members']} members, {res['content_bytes'] / 1e6:.1f} MB"
                f" -> {res['bytes'] / 1e6:.1f} MB ({comp})")
        out.print(f"{res['bundle']}  snapshot {sid}")

    ui.emit(res, human)
    return 0


def _swh_list(sources: list, ui, where: str) -> int:
    """Print the sources' SWHIDs: one line each, the swh:1:dir: (else the swh:1:cnt:), role and name."""
    if not isinstance(sources, list):
        raise EnvgenError(f"{where}: the bundle manifest's sources are malformed")

    def human(out):
        if not sources:
            ui.info(f"{where}: no sources (sdists or local projects) to name")
        for s in sources:
            out.print(f"{s.get('directory') or s.get('content')}  {s.get('role')}  {s.get('name')}")

    ui.emit({"from": where, "sources": sources}, human)
    return 0


def run_restore(args, ui) -> int:
    store = open_store(args.store)
    with ui.status(f"checking {args.bundle}"):
        res = restore_bundle(store, args.bundle, args.into)
    res["store"] = str(store.root)

    def human(out):
        ui.info(f"{res['objects']} objects checked, {res['added']} added to {store.root}")
        if res["spec"]:
            ui.info(f"work tree written; offline: envgen snapshot {res['spec']} --store {store.root}")
        out.print(res["id"])

    ui.emit(res, human)
    return 0
