"""Restoring a bundle, hostile-proof: nothing leaves the stage until every check has passed.

:func:`restore_bundle` runs four steps, each its own function:

1. :func:`_stage_members`: read the tar once, check every member's name, type
   and size against the manifest, and copy it into the stage while hashing it;
2. :func:`_check_staged`: the staged set against the manifest and the snapshot
   (every listed member present, ``snapshot.json`` hashing to the id, no object
   missing, none extra, well-formed ``env.json``/``runs.json``);
3. :func:`_lay_out_tree`: the work tree (spec, lock, local projects) built
   inside the stage, every path and source pack checked;
4. :func:`_commit`: objects into the store, the snapshot root, then the tree.

Any refusal is a :class:`~envgen.errors.BundleRefused` (hint: nothing was
restored); a file that is no bundle at all is a :class:`~envgen.errors.NotABundle`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import formats
from ..errors import BundleRefused, EnvgenError, FormatError, NewerFormatError, NotABundle
from ..fsutil import remove_tree
from ..snapshot import parse_manifest, srcpack
from ..snapshot.store import Store, is_sha256
from .members import (
    ATTESTATIONS,
    CHUNK,
    ENV,
    EVIDENCE_ROLES,
    KIND,
    MANIFEST,
    MAX_MANIFEST,
    NOT_A_BUNDLE_HINT,
    READ_ERRORS,
    RUNS,
    SELFHOST_ID,
    SELFHOST_SNAPSHOT,
    SNAPSHOT,
    open_decompressed,
)


def _refuse(bundle: Path, why: str) -> BundleRefused:
    return BundleRefused(f"{bundle}: refused: {why}", hint="nothing was restored")


def restore_bundle(store: Store, bundle: str | os.PathLike, into: str | os.PathLike | None = None) -> dict:
    """Check every member, then load the objects into *store*, write the root, and optionally the work tree."""
    bundle = Path(bundle)
    if not bundle.is_file():
        raise EnvgenError(f"{bundle}: no such file")
    into_p = Path(into) if into is not None else None
    if into_p is not None and into_p.exists() and (not into_p.is_dir() or any(into_p.iterdir())):
        raise EnvgenError(f"{into_p}: exists and is not an empty directory",
                          hint="give --into a new or empty directory")
    with store.session():
        stage = store.staging_dir("restore-")
        try:
            staged = _stage_members(bundle, stage)
            checked = _check_staged(bundle, staged)
            tree = _lay_out_tree(bundle, staged, checked.snap, stage / "tree") if into_p is not None else None
            attestations = {}
            for name, path in staged.files.items():
                if name.startswith(ATTESTATIONS) and path is not None:
                    attestations[name] = path.read_bytes()
            added = _commit(store, staged, checked, tree, into_p)
        finally:
            remove_tree(stage)
    snap = checked.snap
    spec = next((o for o in snap["objects"] if o["role"] == "spec"), None)
    lock = next((o for o in snap["objects"] if o["role"] == "lock"), None)
    return {"bundle": str(bundle), "id": checked.sid, "name": snap["name"], "objects": len(checked.wanted),
            "added": added, "into": str(into_p) if into_p is not None else None,
            "spec": str(into_p / spec["path"]) if (into_p is not None and spec) else None,
            "lock": str(into_p / lock["path"]) if (into_p is not None and lock) else None,
            "env": checked.env, "runs": checked.runs, "damaged": staged.damaged, "attestations": attestations}


# --------------------------------------------------------------------------- 1. read and stage


@dataclass
class _Staged:
    """What step 1 read: the manifest, and each member's staged file (None: damaged evidence, dropped)."""

    manifest: dict
    files: dict[str, Path | None] = field(default_factory=dict)
    damaged: list[dict] = field(default_factory=list)


def _check_manifest(bundle: Path, raw: bytes) -> dict:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise _refuse(bundle, "the bundle manifest is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise NotABundle(f"{bundle}: not an envgen bundle", hint=NOT_A_BUNDLE_HINT)
    try:
        formats.check(KIND, doc.get("format-version"), str(bundle))
    except NewerFormatError:
        raise
    except FormatError:
        raise _refuse(bundle, "the bundle manifest has no format-version") from None
    sid = doc.get("snapshot-id")
    members = doc.get("members")
    if not is_sha256(sid) or not isinstance(members, list):
        raise _refuse(bundle, "the bundle manifest lacks snapshot-id or members")
    if SELFHOST_ID in doc and not is_sha256(doc[SELFHOST_ID]):
        raise _refuse(bundle, f"the bundle manifest's {SELFHOST_ID} is not a sha256")
    seen = set()
    for m in members:
        if not (isinstance(m, dict) and isinstance(m.get("path"), str) and is_sha256(m.get("sha256"))
                and isinstance(m.get("size"), int) and m["size"] >= 0):
            raise _refuse(bundle, f"malformed member entry {m!r:.200}")
        why = srcpack.check_member(m["path"])
        if why or m["path"] == MANIFEST:
            raise _refuse(bundle, f"manifest member {m['path']!r}: {why or 'reserved name'}")
        if m["path"] in seen:
            raise _refuse(bundle, f"duplicate manifest member {m['path']!r}")
        seen.add(m["path"])
        if m["path"].startswith("objects/"):
            parts = m["path"].split("/")
            if len(parts) != 3 or parts[1] != "sha256" or parts[2] != m["sha256"]:
                raise _refuse(bundle, f"object member {m['path']!r} is not objects/sha256/<its sha256>")
    if SNAPSHOT not in seen:
        raise _refuse(bundle, f"no {SNAPSHOT} in the manifest")
    return doc


def _read_manifest(bundle: Path, tf: tarfile.TarFile) -> dict:
    first = tf.next()
    if first is None or first.name != MANIFEST:
        raise NotABundle(f"{bundle}: not an envgen bundle (no {MANIFEST} first)", hint=NOT_A_BUNDLE_HINT)
    body = tf.extractfile(first) if first.isreg() else None
    if body is None or first.size > MAX_MANIFEST:
        raise _refuse(bundle, f"{MANIFEST} is not a regular file of sane size")
    return _check_manifest(bundle, body.read())


def _kind_of(ti: tarfile.TarInfo) -> str:
    return ("symlink" if ti.issym() else "hardlink" if ti.islnk() else "directory" if ti.isdir()
            else "device" if ti.isdev() else "fifo" if ti.isfifo() else "special file")


def _copy_hashing(src, dest: Path) -> str:
    """Copy the stream *src* to *dest* (fsynced); return the sha256 of what was copied."""
    h = hashlib.sha256()
    with open(dest, "wb") as out:
        while True:
            b = src.read(CHUNK)
            if not b:
                break
            h.update(b)
            out.write(b)
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest()


def _stage_member(bundle: Path, tf: tarfile.TarFile, ti: tarfile.TarInfo, m: dict | None, dest: Path,
                  staged: _Staged) -> None:
    """Check one member against the manifest entry *m* and copy it to *dest* while hashing it."""
    why = srcpack.check_member(ti.name)
    if why:
        raise _refuse(bundle, f"member {ti.name!r}: {why}")
    if not ti.isreg():
        raise _refuse(bundle, f"member {ti.name!r} is a {_kind_of(ti)}; only regular files are allowed")
    if ti.name in staged.files or ti.name == MANIFEST:
        raise _refuse(bundle, f"duplicate member {ti.name!r}")
    if m is None:
        raise _refuse(bundle, f"member {ti.name!r} is not in the manifest")
    if ti.size != m["size"]:
        raise _refuse(bundle, f"member {ti.name!r} has {ti.size} bytes, the manifest says {m['size']}")
    sha = _copy_hashing(tf.extractfile(ti), dest)
    if sha == m["sha256"]:
        staged.files[ti.name] = dest
        return
    if m.get("role") not in EVIDENCE_ROLES:
        raise _refuse(bundle, f"member {ti.name!r}: sha256 {sha}, the manifest says {m['sha256']}")
    # damaged evidence: the environment stays available; `envgen verify` reports it
    staged.damaged.append({"path": ti.name, "role": m["role"], "expected": m["sha256"], "actual": sha})
    dest.unlink()
    staged.files[ti.name] = None


def _stage_members(bundle: Path, stage: Path) -> _Staged:
    """Step 1: read the bundle once, checking and staging every member (``stage/m000001``, …)."""
    with open(bundle, "rb") as fh:
        try:
            tf = tarfile.open(fileobj=open_decompressed(fh), mode="r|")
        except (OSError, *READ_ERRORS):
            raise NotABundle(f"{bundle}: not an envgen bundle (not a tar archive)", hint=NOT_A_BUNDLE_HINT) from None
        try:
            staged = _Staged(_read_manifest(bundle, tf))
            expected = {m["path"]: m for m in staged.manifest["members"]}
            i = 0
            while (ti := tf.next()) is not None:
                i += 1
                _stage_member(bundle, tf, ti, expected.get(ti.name), stage / f"m{i:06d}", staged)
        except READ_ERRORS as exc:
            raise _refuse(bundle, f"damaged archive: {exc}") from None
        finally:
            tf.close()
    return staged


# --------------------------------------------------------------------------- 2. check the staged set


@dataclass
class _Checked:
    sid: str
    snap_bytes: bytes
    snap: dict
    wanted: set[str]
    env: dict | None
    runs: list[dict]
    selfhost: tuple[str, bytes] | None = None  # envgen's own runtime snapshot: (id, manifest bytes)


def _json_member(bundle: Path, files: dict, name: str, kind: type):
    p = files.get(name)
    if p is None:
        return None
    try:
        value = json.loads(p.read_bytes())
    except ValueError:
        raise _refuse(bundle, f"{name} is not valid JSON") from None
    if not isinstance(value, kind):
        raise _refuse(bundle, f"{name} is not a JSON {kind.__name__}")
    return value


def _check_staged(bundle: Path, staged: _Staged) -> _Checked:
    """Step 2: every listed member was read; the snapshot hashes to its id; objects match it exactly."""
    files = staged.files
    missing = sorted({m["path"] for m in staged.manifest["members"]} - set(files))
    if missing:
        raise _refuse(bundle, f"members listed in the manifest are absent: {', '.join(missing[:5])}")
    sid, snap_bytes, snap = _snapshot_member(bundle, files, SNAPSHOT, staged.manifest["snapshot-id"])
    wanted = {o["sha256"] for o in snap["objects"]}
    selfhost = None
    if SELFHOST_ID in staged.manifest:
        own_id, own_bytes, own = _snapshot_member(bundle, files, SELFHOST_SNAPSHOT, staged.manifest[SELFHOST_ID])
        selfhost = (own_id, own_bytes)
        wanted_here = wanted | {o["sha256"] for o in own["objects"]}
    else:
        wanted_here = wanted
    present = {p.split("/")[2] for p in files if p.startswith("objects/")}
    if wanted_here - present:
        raise _refuse(bundle, f"snapshot objects absent from the bundle: "
                              f"{', '.join(sorted(wanted_here - present)[:3])}")
    env_doc = _json_member(bundle, files, ENV, dict)
    runs = _json_member(bundle, files, RUNS, list) or []
    if not all(isinstance(r, dict) and isinstance(r.get("inputs", {}), dict) and isinstance(r.get("outputs", {}), dict)
               for r in runs):
        raise _refuse(bundle, f"{RUNS} holds a malformed run record")
    evidence = {info["sha256"] for r in runs for key in ("inputs", "outputs")
                for info in (r.get(key) or {}).values() if isinstance(info, dict)}
    if present - wanted_here - evidence:
        raise _refuse(bundle, f"objects not in the snapshot: "
                              f"{', '.join(sorted(present - wanted_here - evidence)[:3])}")
    return _Checked(sid, snap_bytes, snap, wanted, env_doc, runs, selfhost)


def _snapshot_member(bundle: Path, files: dict, name: str, sid: str) -> tuple[str, bytes, dict]:
    """(id, bytes, parsed) of the snapshot manifest member *name*, which must hash to *sid*."""
    path = files.get(name)
    if path is None:  # absent, or dropped as damaged: only a manifest that calls it evidence allows that
        raise _refuse(bundle, f"{name} is {'damaged' if name in files else 'absent'}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sid:
        raise _refuse(bundle, f"{name} does not hash to the snapshot id {sid}")
    return sid, data, parse_manifest(data, f"{bundle}:{name}")


# --------------------------------------------------------------------------- 3. lay out the work tree


def _lay_out_tree(bundle: Path, staged: _Staged, snap: dict, tree: Path) -> Path:
    """Step 3: write the spec, the lock and the local projects under *tree* (inside the stage).

    Every path and every source pack is validated before anything leaves the stage.
    """
    tree.mkdir()
    for o in snap["objects"]:
        if o["role"] not in ("spec", "lock", "local-source"):
            continue
        rel = o.get("path")
        if not isinstance(rel, str) or (srcpack.check_member(rel) and not (o["role"] == "local-source" and rel == ".")):
            raise _refuse(bundle, f"{o['role']} {o.get('name')!r} has an unsafe path {rel!r}")
        src = staged.files[f"objects/sha256/{o['sha256']}"]
        if src is None:  # dropped as damaged: only a manifest that calls it evidence allows that
            raise _refuse(bundle, f"{o['role']} {o.get('name')!r} is damaged")
        target = tree / rel
        if o["role"] == "local-source":
            try:
                srcpack.unpack(src, target, f"{bundle}: local project {o['name']}")
            except tarfile.TarError as exc:
                raise _refuse(bundle, f"local project {o['name']}: damaged tar: {exc}") from None
            except BundleRefused:
                raise
            except EnvgenError as exc:  # srcpack's refusal of an unsafe member, as a bundle refusal
                raise BundleRefused(exc.message, hint="nothing was restored") from None
        else:
            if target.exists():
                raise _refuse(bundle, f"two files at {rel!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            os.chmod(target, 0o644)
    return tree


# --------------------------------------------------------------------------- 4. commit


def _commit(store: Store, staged: _Staged, checked: _Checked, tree: Path | None, into: Path | None) -> int:
    """Step 4: objects into the store, the snapshot root, then the work tree; return how many objects were new."""
    added = 0
    for path, p in staged.files.items():
        if path.startswith("objects/") and p is not None:
            sha = path.split("/")[2]
            if not store.has(sha):
                store.adopt(p, sha)
                added += 1
    store.write_root(checked.sid, checked.snap_bytes)
    if checked.selfhost is not None:
        store.write_root(*checked.selfhost)
    if tree is not None and into is not None:
        into.mkdir(parents=True, exist_ok=True)
        for entry in sorted(tree.iterdir()):
            shutil.move(str(entry), str(into / entry.name))
    return added
