"""envgen export SPEC --format oci|docker-archive|sif|sqsh -o OUT"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from ..lock import load_lock_for
from ..snapshot import load_root
from ..snapshot.store import open_store
from . import variant_option


def register(sub, parents, fmt):
    from ..export import FORMATS

    p = sub.add_parser(
        "export",
        parents=parents,
        formatter_class=fmt,
        help="export the built environment as a reproducible OCI image, docker-archive, SIF or squashfs",
        description=textwrap.dedent(
            """\
            Build SPEC's environment if needed (offline, from the store), then write it
            as an image. The same snapshot gives the same bytes on every machine:
            sorted tar entries, owners 0, mtimes clamped to the snapshot date, gzip
            with a fixed header, JSON with sorted keys, nil UUIDs and fixed times.

              oci             an OCI image layout directory (layers: Debian runtime,
                              big package families, the rest of /opt/env, the project)
              docker-archive  a tar for `podman load` / `docker load`
              sif             an Apptainer SIF (squashfs + /.singularity.d, Deffile,
                              labels, CycloneDX SBOM)
              sqsh            a plain squashfs for enroot / pyxis

            The image is named envgen/NAME:SNAPSHOT12, runs SPEC's [run] command as
            user 1000:1000, and carries a CycloneDX SBOM at /.envgen/sbom.cdx.json.

            Every export also carries a SLSA v1 provenance statement (an in-toto
            Statement naming every snapshot object by sha256 and URL; its subject is
            the image manifest, the SIF's partition, or the file): in an OCI layout
            the SBOM and the provenance are OCI 1.1 referrers of the image (artifact
            manifests with a `subject`, not listed in index.json, so the image's
            digests do not change); in a SIF they are data objects after the
            partition; next to a docker-archive or sqsh file it is OUT.intoto.json.
            --key KEY (from `envgen keygen`, or an ed25519 SSH key) adds DSSE
            envelopes of the provenance and the SBOM, checked by
            `envgen verify --key KEY.pub OUT`.
            """
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              envgen export specs/abide.toml --format oci -o abide.oci
              skopeo inspect oci:abide.oci:envgen/abide:$(jq -r .snapshot_id ...)
              envgen export specs/abide.toml --format docker-archive -o abide.tar && podman load -i abide.tar
              envgen export specs/abide.toml --format sif -o abide.sif && siftool list abide.sif
              envgen keygen release.key && envgen export specs/abide.toml -o abide.oci --key release.key
              envgen verify --key release.key.pub abide.oci
            """
        ),
    )
    p.add_argument("spec", metavar="SPEC", help="a spec (its lock is read) or a pylock.*.toml")
    variant_option(p)
    p.add_argument("--format", "-f", dest="fmt", choices=FORMATS, default="oci", help="output format (default: oci)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory (oci) or file")
    p.add_argument("--compression", choices=["gzip", "zstd"], default="gzip", help="OCI layer compression")
    p.add_argument("--level", type=int, default=None, help="compression level (gzip 6, zstd 3 by default)")
    p.add_argument("--jobs", type=int, default=2, help="layers compressed in parallel (default 2)")
    p.add_argument("--revision", metavar="REV",
                   help="org.opencontainers.image.revision (e.g. $(git rev-parse HEAD)); none by default, "
                        "so unrelated commits leave the image unchanged")
    p.add_argument("--builder", choices=["embedded", "nix"], default="embedded",
                   help="which builder makes the tree that is exported (the trees are identical; default: embedded)")
    p.add_argument("--force", action="store_true", help="overwrite OUT even if it is not an envgen export")
    p.add_argument("--key", metavar="KEY", action="append", default=[],
                   help="sign the provenance and the SBOM with this ed25519 private key (repeatable)")
    p.set_defaults(func=run)


def run(args, ui) -> int:
    from .. import attest
    from ..builders import build_spec
    from ..export import EXPORTERS, ExportOptions, check_output_path, meta_for
    from ..signing import load_signer

    exporter = EXPORTERS[args.fmt]
    out = Path(args.output)
    check_output_path(out, args.force, exporter.output)
    signers = [load_signer(k) for k in args.key]  # a bad key: one line, before any work
    store = open_store(args.store)
    spec, lock = load_lock_for(args.spec, ui, args.variant)
    with ui.status(f"building {lock.name}") as update:
        res = build_spec(store, lock, spec.path if spec else None, args.builder, note=update)
    meta = meta_for(spec, lock, res, revision=args.revision)
    options = ExportOptions(compression=args.compression, level=args.level, jobs=args.jobs)
    export_params = {"format": args.fmt, "ref": meta.ref,
                     **({"compression": args.compression, "level": args.level} if args.fmt == "oci" else {}),
                     **({"revision": args.revision} if args.revision else {})}
    meta.provenance = attest.provenance_predicate(load_root(store, res.snapshot_id), res.snapshot_id, lock,
                                                  res.builder, export=export_params)
    meta.signers = signers
    t0 = time.perf_counter()
    with ui.status(f"exporting {lock.name} as {args.fmt}"):
        summary = exporter(meta, out, options)
        if args.fmt in ("docker-archive", "sqsh"):
            summary["provenance"] = _sidecar(meta, out, summary, signers)
    summary.update({"seconds": round(time.perf_counter() - t0, 3), "snapshot_id": res.snapshot_id,
                    "tree_digest": res.digest})

    def human(o):
        o.print(f"{lock.name}: {args.fmt} written to {out} ({summary['size'] / 1e6:.0f} MB, "
                f"{summary['seconds']:.1f} s)")
        if "ref" in summary:
            o.print(f"  ref {summary['ref']}")
        if "manifest_digest" in summary:
            o.print(f"  manifest {summary['manifest_digest']}")
        for layer in summary.get("layers", []):
            o.print(f"    {layer['name']:<16} {layer['size'] / 1e6:8.1f} MB  {layer.get('digest', layer['diff_id'])}")
        if "sha256" in summary:
            o.print(f"  sha256 {summary['sha256']}")

    ui.emit(summary, human)
    return 0


def _sidecar(meta, out: Path, summary: dict, signers) -> list[str]:
    """OUT.intoto.json (and OUT.intoto.dsse.json, signed) next to a docker-archive or sqsh file."""
    from .. import attest
    from ..fsutil import atomic_write
    from ..signing import sign

    digest = summary["image_id"] if "image_id" in summary else summary["sha256"]
    name = meta.ref if "image_id" in summary else out.name
    stmt = meta.provenance_statement([attest.subject(name, digest.removeprefix("sha256:"))])
    paths = [str(atomic_write(f"{out}.intoto.json", stmt))]
    if signers:
        paths.append(str(atomic_write(f"{out}.intoto.dsse.json", sign(stmt, attest.MT_INTOTO, list(signers)))))
    return paths

