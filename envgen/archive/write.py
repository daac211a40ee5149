"""Writing a bundle: the manifest first, then every member sorted by path, one deterministic tar.

Besides the store objects and ``snapshot.json``, a bundle carries members
made here: ``README.md`` (how to rebuild offline and check the claim),
``CITATION.cff`` (a citation stub) and ``envgen-source.tar`` (the envgen that
made it), plus ``env.json`` and ``runs.json`` when given.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import BinaryIO, TypedDict

from .. import __version__, formats
from ..clock import SnapshotDate
from ..errors import EnvgenError
from ..fsutil import atomic_output, file_sha256
from ..snapshot import load_root, srcpack
from ..snapshot.store import Store
from ..tarfmt import entry
from .members import (
    DEFAULT_COMPRESSION,
    DEFAULT_LEVELS,
    ENV,
    KIND,
    MANIFEST,
    PROVENANCE,
    RUNS,
    SBOM,
    SIGNED,
    SNAPSHOT,
    SOURCE,
    Compressed,
    check_compression,
    envelope_of,
    is_bundle,
)


class _Member(TypedDict):
    path: str
    role: str
    sha256: str
    size: int


def _envgen_source(mtime: int) -> bytes:
    import envgen

    pkg = Path(envgen.__file__).resolve().parent
    repo = pkg.parent
    entries = [(f"envgen/{f}", pkg / f) for f in srcpack.list_files(pkg)]
    for extra in ("pyproject.toml", "requirements/dev.txt"):
        if (repo / extra).is_file():
            entries.append((extra, repo / extra))
    buf = io.BytesIO()
    srcpack.pack_files(entries, buf, mtime)
    return buf.getvalue()


def _readme(doc: dict, sid: str, self_contained: bool) -> bytes:
    objs = doc["objects"]
    spec = next((o for o in objs if o["role"] == "spec"), None)
    lock = next((o for o in objs if o["role"] == "lock"), None)
    spec_path = spec["path"] if spec else (lock["path"] if lock else "SPEC")
    bare = """
## Verify it on a bare Linux host

This bundle also carries envgen's own runtime (Python, bubblewrap, envgen's
wheels, a static busybox), so on an x86_64 Linux host with nothing but `sh`,
`tar` and coreutils (no Python, no envgen, no root, no network), as long as
the kernel allows unprivileged user namespaces:

    tar -xf BUNDLE VERIFY.sh && sh VERIFY.sh BUNDLE [--html report.html] [--key AUTHORS.pub]

checks every member's sha256 against `envgen-bundle.json` before it runs
anything, bootstraps envgen from the bundle, and prints the verdict of
`envgen verify` below, with the same exit status (this needs a plain `.tar`
bundle, or `.tar.gz` where gzip is installed). With `--key`, the authors'
ed25519 public key, it first checks that they signed the bundle's provenance.
""" if self_contained else ""
    text = f"""# envgen bundle: {doc['name']}

Snapshot id: `{sid}`
Snapshot date: {doc['snapshot-date']}
Made by envgen {__version__}.
{bare}
This file holds everything needed to rebuild the environment `{doc['name']}`
without a network: the spec and its lock, every wheel, sdist and Debian
package the lock names (objects/sha256/<sha256>, named by their hash), the
local projects as deterministic tars, and the envgen source that made it
(envgen-source.tar). `envgen-bundle.json` lists every member with its
sha256, size and role; `snapshot.json` says which object is which (its
sha256 is the snapshot id above).

## Rebuild offline

1. Install envgen. If you have none, the one that made this bundle is in
   envgen-source.tar (`tar -xf envgen-source.tar`; `pip install -r
   requirements/dev.txt` needs the network or a wheelhouse, then `pip install -e .`).
2. Check the bundle and load it into a store, writing the spec, the lock and
   the local projects to a work directory:

       envgen restore BUNDLE --store STORE --into WORK

3. Everything is now in STORE; this needs no network and prints the id above:

       envgen snapshot WORK/{spec_path} --store STORE

4. Build and run from WORK/{spec_path} with the same --store.

`envgen store verify {sid} --store STORE` rehashes every object.

## Check the paper's claim in one command

    unshare -n envgen verify BUNDLE --html report.html

restores the bundle into an empty store, rebuilds the environment offline and
compares its tree digest with `env.json`, reruns every recorded run in
`runs.json` (if the bundle carries any: `envgen archive --with-runs`) and
compares the outputs; it prints a verdict per ACM badge (Available,
Functional, Reproduced) with the evidence behind each.
"""
    return text.encode()


def _citation(doc: dict, sid: str, sources: list[dict]) -> bytes:
    date = doc["snapshot-date"][:10]
    text = f"""# A citation stub for this environment; fill in the authors and title.
cff-version: 1.2.0
message: "If you use this environment, please cite it as below."
type: software
title: "{doc['name']}: envgen environment snapshot {sid[:12]}"
version: "{sid}"
date-released: "{date}"
authors:
  - name: "TODO: the environment's authors"
identifiers:
  - type: other
    value: "envgen-snapshot:sha256:{sid}"
    description: "envgen snapshot id (sha256 of the snapshot manifest)"
"""
    for s in sources:  # local projects first: they are the work being cited
        what = {"local-source": "local project", "vcs-source": "git commit"}.get(s["role"], s["role"])
        if "directory" in s:
            value, desc = s["directory"], f"Software Heritage id of the unpacked source of {s['name']} ({what})"
        else:
            value, desc = s["content"], f"Software Heritage id of the source archive {s['name']} ({what})"
        # JSON strings are YAML double-quoted scalars: a name cannot break out of its line
        text += f"  - type: swh\n    value: {json.dumps(value)}\n    description: {json.dumps(desc)}\n"
    return text.encode()


def bundle_sources(store: Store, doc: dict) -> list[dict]:
    """The SWHIDs of the snapshot's sources (:func:`envgen.swhid.source_swhids`), local projects first."""
    from ..swhid import source_swhids

    return sorted(source_swhids(store, doc["objects"]), key=lambda s: (s["role"] != "local-source", s["name"],
                                                                       s["role"], s["object"]))


def _attestations(store: Store, sid: str, doc: dict, env: dict | None, signers: list) -> dict:
    """The bundle's provenance and SBOM members (and their DSSE envelopes, one per member, signed by *signers*)."""
    from .. import attest
    from ..export.sbom import make_sbom
    from ..lock import pylock
    from ..signing import sign

    lock_obj = next((o for o in doc["objects"] if o["role"] == "lock"), None)
    lock = None
    if lock_obj is not None and store.has(lock_obj["sha256"]):
        lock = pylock.loads(store.path_of(lock_obj["sha256"]).read_text(), Path(lock_obj["path"]))
    tree = (env or {}).get("tree-digest")
    builder = (env or {}).get("builder", "embedded")
    subjects = [attest.subject(SNAPSHOT, sid, "application/json")]
    if tree:
        subjects.append(attest.tree_subject(doc["name"], tree))
    out: dict[str, tuple[str, bytes, int]] = {}
    stmt = attest.to_bytes(attest.provenance(subjects, attest.provenance_predicate(doc, sid, lock, builder)))
    out[PROVENANCE] = ("provenance", stmt, 0o644)
    if lock is not None:
        out[SBOM] = ("sbom", make_sbom(lock, tree, sid, doc["name"]), 0o644)
    for path in list(out) if signers else []:
        out[envelope_of(path)] = ("signature", sign(out[path][1], SIGNED[path], list(signers)), 0o644)
    return out


class _HashingReader:
    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.h = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        b = self.fh.read(n)
        self.h.update(b)
        return b


def check_out(out: Path, force: bool) -> None:
    """Refuse to overwrite what is not a bundle (without *force*) or a directory; before any work is done."""
    if out.exists() and not force:
        if out.is_dir():
            raise EnvgenError(f"{out}: is a directory", hint="give a file name with -o")
        if not is_bundle(out):
            raise EnvgenError(f"{out}: exists and is not an envgen bundle; not overwriting", hint="use --force")


def _roles(store: Store, sid: str, doc: dict, runs: list[dict]) -> dict[str, str]:
    """{sha256: role} of every store object the bundle carries; each must be in the store."""
    roles: dict[str, str] = {}
    for o in doc["objects"]:
        roles.setdefault(o["sha256"], o["role"])
        if not store.has(o["sha256"]):
            raise EnvgenError(f"object {o['sha256']} ({o['name']}) of snapshot {sid} is missing from {store.root}",
                              hint="run `envgen snapshot SPEC` first")
    for r in runs:
        for role, files in (("run-input", r["inputs"]), ("run-output", r["outputs"])):
            for path, info in files.items():
                if not store.has(info["sha256"]):
                    raise EnvgenError(f"run {r['id']}: {role[4:]} {path} ({info['sha256'][:16]}…) is not in the store")
                roles.setdefault(info["sha256"], role)
    return roles


def _json_bytes(value) -> bytes:
    return json.dumps(value, sort_keys=True, indent=1).encode() + b"\n"


def write_bundle(store: Store, sid: str, out: str | os.PathLike, compression: str = DEFAULT_COMPRESSION,
                 level: int | None = None, force: bool = False, env: dict | None = None,
                 runs: list[dict] | None = None, selfhost: str | None = None, signers: list | None = None) -> dict:
    """Write the bundle of snapshot *sid*.

    *env* (builder, tree digest) becomes ``env.json``: what a rebuild must give.
    *runs* (provenance records, host paths removed) become ``runs.json``, and
    their input and output files travel as objects (roles ``run-input`` and
    ``run-output``), so ``envgen verify`` can rerun them from the bundle alone.
    *selfhost*, the snapshot id of envgen's own runtime in *store*
    (:mod:`envgen.selfhost`), adds ``VERIFY.sh`` and that snapshot: the bundle
    then verifies itself on a host with only ``sh``, ``tar`` and coreutils.
    Every bundle carries ``attestations/``: the SLSA provenance of the snapshot
    (and of the tree, when *env* gives its digest) and the CycloneDX SBOM; with
    *signers*, a DSSE envelope of each (``*.dsse.json``).
    """
    out = Path(out)
    check_compression(compression)
    check_out(out, force)
    doc = load_root(store, sid)
    mtime = SnapshotDate.parse(doc["snapshot-date"]).epoch
    snap_bytes = store.read_root(sid)
    if snap_bytes is None:  # load_root has just read it; only a concurrent removal gets here
        raise EnvgenError(f"snapshot {sid} is not in the store {store.root}",
                          hint="run `envgen snapshot SPEC` or `envgen restore BUNDLE`")
    roles = _roles(store, sid, doc, runs or [])
    sources = bundle_sources(store, doc)
    small: dict[str, tuple[str, bytes, int]] = {
        SNAPSHOT: ("snapshot", snap_bytes, 0o644),
        SOURCE: ("envgen-source", _envgen_source(mtime), 0o644),
        "README.md": ("readme", _readme(doc, sid, selfhost is not None), 0o644),
        "CITATION.cff": ("citation", _citation(doc, sid, sources), 0o644),
    }
    if env is not None:
        small[ENV] = ("env", _json_bytes(env), 0o644)
    if runs:
        small[RUNS] = ("runs", _json_bytes(sorted(runs, key=lambda r: r["id"])), 0o644)
    small.update(_attestations(store, sid, doc, env, signers or []))
    if selfhost is not None:
        from ..selfhost import bundle_members

        own = bundle_members(store, selfhost)
        small.update(own.members)
        for sha, role in own.objects.items():
            roles.setdefault(sha, role)
    members: list[_Member] = []
    for path, (role, data, _) in small.items():
        members.append({"path": path, "role": role, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    for sha, role in roles.items():
        members.append({"path": f"objects/sha256/{sha}", "role": role, "sha256": sha, "size": store.size_of(sha)})
    members.sort(key=lambda m: m["path"])
    manifest = {
        **formats.header(KIND),
        "snapshot-id": sid,
        "name": doc["name"],
        "snapshot-date": doc["snapshot-date"],
        "envgen-version": __version__,
        "members": members,
        "sources": sources,
        **({"selfhost-snapshot-id": selfhost} if selfhost is not None else {}),
    }
    mbytes = json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False).encode() + b"\n"

    with atomic_output(out) as fh:
        comp = Compressed(fh, compression, level)
        # "w|" only calls write(); typeshed asks every mode for a readable, seekable file object
        with tarfile.open(fileobj=comp, mode="w|",  # type: ignore[call-overload]
                          format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:
            tf.addfile(entry(MANIFEST, size=len(mbytes), mtime=mtime), io.BytesIO(mbytes))
            for m in members:
                if m["path"] in small:
                    _, data, mode = small[m["path"]]
                    tf.addfile(entry(m["path"], size=len(data), mtime=mtime, mode=mode), io.BytesIO(data))
                    continue
                with store.open(m["sha256"]) as src:
                    hr = _HashingReader(src)
                    tf.addfile(entry(m["path"], size=m["size"], mtime=mtime), hr)
                    if hr.h.hexdigest() != m["sha256"]:
                        raise EnvgenError(f"store object {m['sha256']} is corrupt",
                                          hint="run `envgen store verify --repair` and `envgen snapshot SPEC`")
        comp.close()
    return {"bundle": str(out), "id": sid, "name": doc["name"], "compression": compression,
            "level": DEFAULT_LEVELS[compression] if level is None else level,
            "members": len(members) + 1, "content_bytes": sum(m["size"] for m in members) + len(mbytes),
            "bytes": out.stat().st_size, "sha256": file_sha256(out), "sources": sources}
