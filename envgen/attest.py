"""Standard statements about what envgen made: SLSA v1 provenance and rebuild attestations, as in-toto Statements.

Every statement is an in-toto Statement v1 (``_type`` https://in-toto.io/Statement/v1)
serialised with :func:`envgen.fsutil.canonical_json`: the same snapshot gives the
same bytes on any host.  No clock is read: the only time in a statement is the
snapshot date.

* :func:`provenance` — SLSA v1 provenance (``predicateType``
  https://slsa.dev/provenance/v1) of a build (subject: the tree digest) or of an
  export (subject: the image manifest digest, the SIF partition's sha256, the
  squashfs's sha256).  ``resolvedDependencies`` lists every object of the snapshot
  by sha256, with the URL it was fetched from.
* :func:`rebuild_statement` — what ``envgen verify`` and ``envgen challenge``
  rebuilt, the digests they got and their verdict (predicate type
  :data:`REBUILD_PREDICATE`).

The URIs under ``urn:envgen:`` are defined in docs/formats.md ("Attestations").
"""

from __future__ import annotations

from . import __version__
from .fsutil import canonical_json

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
BUILD_TYPE_TREE = "urn:envgen:build-type:tree:v1"
BUILD_TYPE_EXPORT = "urn:envgen:build-type:export:v1"
REBUILD_PREDICATE = "urn:envgen:predicate:rebuild:v1"
MT_INTOTO = "application/vnd.in-toto+json"
MT_CYCLONEDX = "application/vnd.cyclonedx+json"


def builder_id(builder: str) -> str:
    """``urn:envgen:builder:embedded`` or ``urn:envgen:builder:nix``."""
    return f"urn:envgen:builder:{builder}"


def statement(subjects: list[dict], predicate_type: str, predicate: dict) -> dict:
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": predicate_type, "predicate": predicate}


def to_bytes(stmt: dict) -> bytes:
    return canonical_json(stmt)


def subject(name: str, sha256: str, media_type: str | None = None) -> dict:
    out: dict = {"name": name, "digest": {"sha256": sha256}}
    if media_type:
        out["mediaType"] = media_type
    return out


def _urls(lock) -> dict[str, str]:
    """sha256 -> the URL the lock fetches that artifact from (wheels, sdists, build tools, .debs)."""
    urls: dict[str, str] = {}
    if lock is None:
        return urls
    for p in [*lock.packages, *lock.build_tools]:
        for w in p.wheels:
            urls.setdefault(w.sha256, w.url)
        if p.sdist is not None:
            urls.setdefault(p.sdist.sha256, p.sdist.url)
    for d in lock.debian.packages:
        urls.setdefault(d.sha256, d.url)
    return urls


def resolved_dependencies(manifest: dict, sid: str, lock=None) -> list[dict]:
    """Every object of the snapshot *manifest* as a ResourceDescriptor, then the manifest itself.

    ``name`` is the object's file name (the project name for a local source),
    ``digest.sha256`` its sha256, ``uri`` the URL the lock fetches it from (local
    sources, the spec and the lock have none: ``annotations.path`` places them),
    ``annotations`` its snapshot role and size.
    """
    urls = _urls(lock)
    deps = []
    for o in manifest["objects"]:
        d: dict = {"name": o["name"], "digest": {"sha256": o["sha256"]}}
        if o["sha256"] in urls:
            d["uri"] = urls[o["sha256"]]
        ann: dict = {"envgen_role": o["role"], "envgen_size": o["size"]}
        if "path" in o:
            ann["envgen_path"] = o["path"]
        d["annotations"] = ann
        deps.append(d)
    deps.append({"name": "snapshot.json", "digest": {"sha256": sid}, "mediaType": "application/json",
                 "annotations": {"envgen_role": "snapshot"}})
    return deps


def _input(manifest: dict, role: str) -> dict | None:
    o = next((o for o in manifest["objects"] if o["role"] == role), None)
    return {"path": o["path"], "sha256": o["sha256"]} if o else None


def build_definition(manifest: dict, sid: str, lock=None, builder: str = "embedded",
                     export: dict | None = None) -> dict:
    """The SLSA buildDefinition of building (and, with *export*, exporting) snapshot *sid*.

    ``externalParameters``: the spec and the lock by path (relative to the layout
    root) and sha256 (their bytes are snapshot objects, so they are in
    ``resolvedDependencies`` too), the builder and, for an export, its format and
    options.  ``internalParameters``: the snapshot id and date.
    """
    ext: dict = {"lock": _input(manifest, "lock"), "builder": builder}
    spec = _input(manifest, "spec")
    if spec is not None:
        ext["spec"] = spec
    if export is not None:
        ext["export"] = export
    return {
        "buildType": BUILD_TYPE_EXPORT if export is not None else BUILD_TYPE_TREE,
        "externalParameters": ext,
        "internalParameters": {"snapshotId": sid, "snapshotDate": manifest["snapshot-date"]},
        "resolvedDependencies": resolved_dependencies(manifest, sid, lock),
    }


def provenance_predicate(manifest: dict, sid: str, lock=None, builder: str = "embedded",
                         export: dict | None = None, byproducts: list[dict] | None = None) -> dict:
    run: dict = {"builder": {"id": builder_id(builder), "version": {"envgen": __version__}}}
    if byproducts:
        run["byproducts"] = byproducts
    return {"buildDefinition": build_definition(manifest, sid, lock, builder, export), "runDetails": run}


def provenance(subjects: list[dict], predicate: dict) -> dict:
    return statement(subjects, SLSA_PROVENANCE, predicate)


def tree_subject(name: str, tree_digest: str) -> dict:
    """The tree digest as a subject (a sha256, but of the tree's listing: docs/formats.md, "tree digest")."""
    return subject(f"{name}.tree", tree_digest, "application/vnd.envgen.tree-listing")


def build_provenance(store, sid: str, lock, builder: str, tree_digest: str) -> dict:
    from .snapshot import load_root

    manifest = load_root(store, sid)
    return provenance([tree_subject(manifest["name"], tree_digest)],
                      provenance_predicate(manifest, sid, lock, builder))


def rebuild_statement(subjects: list[dict], *, tool: str, rebuilt: dict, got: dict, verdict: str,
                      checks: list[dict] | None = None) -> dict:
    """An in-toto Statement of an independent rebuild (predicate type :data:`REBUILD_PREDICATE`).

    *subjects*: what was rebuilt and checked (the snapshot, the recorded tree digest);
    *rebuilt*: the inputs of the rebuild (snapshot id, builder, bundle digest…);
    *got*: the digests the rebuild gave; *verdict*: its outcome in one word.
    """
    pred: dict = {"rebuilder": {"id": f"urn:envgen:rebuilder:{tool}", "version": {"envgen": __version__}},
                  "rebuilt": rebuilt, "got": got, "verdict": verdict}
    if checks is not None:
        pred["checks"] = checks
    return statement(subjects, REBUILD_PREDICATE, pred)
