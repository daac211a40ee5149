"""envgen challenge SPEC | envgen challenge A B"""

from __future__ import annotations

import textwrap
from pathlib import Path


def register(sub, parents, fmt):
    p = sub.add_parser(
        "challenge",
        parents=parents,
        formatter_class=fmt,
        help="rebuild a snapshot and compare it with the tree in the store, or compare two trees/images",
        description=textwrap.dedent(
            """\
            Is this build what another build makes? (After `guix challenge`.)

            With a SPEC (or a pylock.*.toml): rebuild its snapshot offline in a
            scratch store (the snapshot's objects hard-linked, nothing downloaded) and
            compare the rebuild with the tree already in the store, entry by entry.

            With two paths A and B: compare them. Each may be an env tree (a
            directory, or a store tree directory trees/KEY), an OCI image layout
            (its index, manifest, config and every layer's tar entries), a SIF file
            (its Deffile, labels, SBOM and squashfs partition) or a squashfs file.

            Every differing entry is named with how it differs: mode, size,
            content, type, link target, or missing on one side. Exit status 0 when
            identical, 1 when they differ, 2 on an error. --html writes a report
            that runs Debian's diffoscope on the files whose content differs, when
            diffoscope is installed (the report says so when it is not).

            --attest FILE writes an in-toto Statement of the challenge (predicate
            type urn:envgen:predicate:rebuild:v1): what was rebuilt or compared, the
            digest of each side's listing (for a tree, its tree digest), the number
            of differing entries and the verdict, identical or differing. Sign it
            with `envgen sign FILE --key KEY`.
            """
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              envgen build specs/abide.toml && envgen challenge specs/abide.toml
              envgen challenge specs/abide.toml --builder nix --against embedded
              envgen challenge a.oci b.oci --html report.html
              envgen challenge a.sif b.sif --json
              envgen challenge specs/abide.toml --attest challenge.json && envgen sign challenge.json --key me.key
            """
        ),
    )
    p.add_argument("a", metavar="SPEC|A", help="a spec (or lock) to rebuild, or the first artifact")
    p.add_argument("b", metavar="B", nargs="?", help="the second artifact (then A is one too)")
    p.add_argument("--builder", choices=["embedded", "nix"], default="embedded",
                   help="whose tree in the store is challenged (default: embedded)")
    p.add_argument("--against", choices=["embedded", "nix"], default=None,
                   help="the builder that rebuilds (default: the same as --builder)")
    p.add_argument("--html", metavar="FILE", help="also write an HTML report (content diffs by diffoscope)")
    p.add_argument("--keep", metavar="DIR", help="keep the scratch store and unpacked images in DIR")
    p.add_argument("--attest", metavar="FILE", help="write an in-toto attestation of the rebuild and its verdict")
    p.set_defaults(func=run)


def run(args, ui) -> int:
    from .. import challenge as C
    from ..fsutil import atomic_write

    sid = name = None
    with C.scratch(args.keep) as work:
        if args.b is not None:
            with ui.status("listing both sides"):
                a, b, diffs = C.challenge_paths(args.a, args.b, work)
        else:
            from ..builders import snapshot_offline
            from ..lock import load_lock_for
            from ..snapshot.store import open_store

            store = open_store(args.store)
            spec, lock = load_lock_for(args.a, ui)
            sid = snapshot_offline(store, lock, spec.path if spec else None)
            name = lock.name
            with ui.status(f"challenging {lock.name}") as update:
                a, b, diffs = C.challenge_snapshot(store, sid, args.builder, args.against or args.builder, work,
                                                   note=update)
        doc = C.result_doc(a, b, diffs)
        if args.html:
            atomic_write(Path(args.html), C.to_html(doc, a, b, work))
            doc["html"] = args.html
            doc["diffoscope"] = C.diffoscope_path() is not None
        if args.attest:
            atomic_write(Path(args.attest), C.attestation(a, b, doc, sid, name, args))
            doc["attestation"] = args.attest

    def human(out):
        for line in C.human_lines(doc):
            out.print(line)
        if args.html:
            out.print(f"report: {args.html}" + ("" if doc["diffoscope"] else " (diffoscope not installed: no "
                                                                              "content diffs in it)"))

    ui.emit(doc, human)
    return 0 if doc["identical"] else 1
