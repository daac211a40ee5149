"""envgen build SPEC"""

from __future__ import annotations

import textwrap

from ..lock import load_lock_for
from ..snapshot.store import open_store
from . import variant_option


def register(sub, parents, fmt):
    p = sub.add_parser(
        "build",
        parents=parents,
        formatter_class=fmt,
        help="build the environment tree from the snapshot, offline (prints the tree digest)",
        description=textwrap.dedent(
            """\
            Build SPEC's environment from store objects only, with the network cut:
            the pinned Debian runtime unpacked without maintainer scripts; every
            source the lock builds (local projects, sdist-only packages, [build]
            from-source) built into a wheel by its pinned build backend in a build
            root of the pinned runtime and build .debs (compilers included), or
            taken from the store's cache of built wheels; then every wheel
            installed into /opt/env by the pinned pypa installer, bytecode
            compiled with unchecked-hash pycs, modes made canonical, every mtime
            clamped to the snapshot date. The embedded builder runs these steps
            under bubblewrap; --builder nix runs the same program in Nix's sandbox.

            The embedded builder makes the tree from install units: each .deb, each
            wheel and the standard library's bytecode is installed once into the
            store (units/KEY) and hard-linked into every tree that has it, so a
            tree that differs from a built one by a package installs that package
            only (--json lists the units made and reused). `envgen gc` removes the
            units no tree uses.

            The tree lands in the store under a key derived from its inputs
            (trees/KEY); building the same snapshot again is a cache hit. The
            printed tree digest (sha256 over sorted paths, modes, link targets and
            contents) is the same on every rebuild: --force rebuilds to prove it,
            making every unit afresh and checking each against the store's.

            Every build writes its SLSA v1 provenance (an in-toto Statement whose
            subject is the tree digest and whose resolvedDependencies are every
            object of the snapshot, by sha256 and URL) to
            STORE/attestations/BUILDER-TREEDIGEST.intoto.json, and with
            --provenance FILE there too; `envgen sign FILE --key KEY` signs it.
            """
        ),
        epilog="example:\n  envgen snapshot specs/abide.toml && envgen build specs/abide.toml\n"
        "  envgen build specs/abide.toml --force --json | jq .tree_digest",
    )
    p.add_argument("spec", metavar="SPEC", help="a spec (its lock is read) or a pylock.*.toml")
    variant_option(p)
    p.add_argument("--builder", choices=["embedded", "nix"], default="embedded",
                   help="which builder (default: embedded; nix: the flake, sandboxed and offline, see docs/nix.md)")
    p.add_argument("--provenance", metavar="FILE", help="also write the build's SLSA provenance to FILE")
    p.add_argument("--force", action="store_true",
                   help="rebuild even if the tree is in the store (and make every install unit afresh)")
    p.set_defaults(func=run)


def run(args, ui) -> int:
    store = open_store(args.store)
    spec, lock = load_lock_for(args.spec, ui, args.variant)
    from ..builders import build_spec

    with ui.status(f"building {lock.name}") as update:
        res = build_spec(store, lock, spec.path if spec else None, args.builder, force=args.force, note=update)
    if not res.network_isolated:
        ui.warn("no network namespace was available: the build ran with the network visible "
                "(it used only store objects)")
    data = res.as_dict()
    data["provenance"] = [str(p) for p in write_provenance(store, lock, res, args.provenance)]

    def human(out):
        state = "cached" if res.cached else f"built in {res.seconds:.1f} s"
        out.print(f"{lock.name}: {state}; tree digest {res.digest}")
        out.print(f"  path: {res.rootfs}")
        out.print(f"  snapshot {res.snapshot_id}, {res.files} entries, {res.size / 1e6:.0f} MB"
                  + ("" if res.cached else f", network {'cut' if res.network_isolated else 'NOT cut'}"))
        out.print(f"  provenance: {data['provenance'][-1]}")

    ui.emit(data, human)
    return 0


def write_provenance(store, lock, res, extra: str | None = None) -> list:
    """The build's SLSA provenance, in the store (and at *extra*): the same bytes for the same snapshot and tree."""
    from .. import attest
    from ..fsutil import atomic_write

    data = attest.to_bytes(attest.build_provenance(store, res.snapshot_id, lock, res.builder, res.digest))
    paths = [atomic_write(store.paths.attestations / f"{res.builder}-{res.digest}.intoto.json", data)]
    if extra:
        paths.append(atomic_write(extra, data))
    return paths
