"""Archive bundles: one self-contained, deterministic file per snapshot.

A bundle is a tar (zstd-, gzip- or xz-compressed, or plain) whose members are,
in this order::

    envgen-bundle.json        the bundle manifest (always first)
    CITATION.cff              a citation stub
    README.md                 how to rebuild offline
    envgen-source.tar         the envgen that made it: envgen/ + pyproject.toml + requirements/dev.txt
    objects/sha256/<hex>      every store object of the snapshot
    snapshot.json             the snapshot manifest (its sha256 is the snapshot id)

(after the manifest, members are sorted by path).  Every entry is a regular
file, mode 0644, uid/gid 0 with empty names, mtime = the snapshot date.  The
bundle manifest::

    {"format-version": 1, "kind": "envgen-bundle", "snapshot-id": "...", "name": "abide",
     "snapshot-date": "...", "envgen-version": "0.1.0",
     "members": [{"path": "...", "role": "...", "sha256": "...", "size": N}, ...]}

lists every other member.  Compression is single-threaded with fixed settings
and no timestamps or file names, so archiving twice gives identical bytes.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

import zstandard

from .. import FORMAT_VERSION, __version__
from ..snapshot import srcpack
from ..errors import EnvgenError
from ..fsutil import file_sha256, fsync_dir
from ..snapshot import load_root, parse_manifest
from ..fsutil import remove_tree
from ..snapshot.store import Store, is_sha256

KIND = "envgen-bundle"
MANIFEST = "envgen-bundle.json"
SNAPSHOT = "snapshot.json"
SOURCE = "envgen-source.tar"
ENV = "env.json"
RUNS = "runs.json"
# Members whose damage does not make the environment unavailable: they are the
# evidence for a claim of reproduced results, checked by `envgen verify`.
EVIDENCE_ROLES = ("run-input", "run-output")
COMPRESSIONS = ("zstd", "gzip", "xz", "none")
DEFAULT_COMPRESSION = "zstd"
DEFAULT_LEVELS = {"zstd": 3, "gzip": 9, "xz": 6, "none": 0}
SUFFIX = {"zstd": ".tar.zst", "gzip": ".tar.gz", "xz": ".tar.xz", "none": ".tar"}
MAX_MANIFEST = 64 << 20
CHUNK = 1 << 20

MAGIC = [(b"\x28\xb5\x2f\xfd", "zstd"), (b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz")]


# --------------------------------------------------------------------------- compression


class _Compressed:
    """A write-only stream that compresses into *fh*; close() flushes without closing *fh*."""

    def __init__(self, fh: BinaryIO, compression: str, level: int | None):
        level = DEFAULT_LEVELS[compression] if level is None else level
        self.fh = fh
        if compression == "zstd":
            # threads=0: single-threaded, so the bytes never depend on the core count
            cctx = zstandard.ZstdCompressor(level=level, threads=0, write_checksum=True)
            self.stream = cctx.stream_writer(fh, closefd=False)
        elif compression == "gzip":
            self.stream = gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=level)
        elif compression == "xz":
            self.stream = lzma.LZMAFile(fh, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=level)
        elif compression == "none":
            self.stream = None
        else:
            raise EnvgenError(f"unknown compression {compression!r}", hint=f"use one of {', '.join(COMPRESSIONS)}")

    def write(self, data) -> int:
        return (self.stream or self.fh).write(data)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def detect_compression(head: bytes) -> str:
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    return "none"


def open_decompressed(fh: BinaryIO) -> BinaryIO:
    head = fh.read(8)
    fh.seek(0)
    comp = detect_compression(head)
    if comp == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True, closefd=False)
    if comp == "gzip":
        return gzip.GzipFile(fileobj=fh, mode="rb")
    if comp == "xz":
        return lzma.LZMAFile(fh, "rb")
    return fh


def is_bundle(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as fh:
            with tarfile.open(fileobj=open_decompressed(fh), mode="r|") as tf:
                first = tf.next()
                return first is not None and first.name == MANIFEST
    except (OSError, tarfile.TarError, EOFError, zstandard.ZstdError, lzma.LZMAError):
        return False


# --------------------------------------------------------------------------- writing


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


def _readme(doc: dict, sid: str) -> bytes:
    objs = doc["objects"]
    spec = next((o for o in objs if o["role"] == "spec"), None)
    lock = next((o for o in objs if o["role"] == "lock"), None)
    spec_path = spec["path"] if spec else (lock["path"] if lock else "SPEC")
    text = f"""# envgen bundle: {doc['name']}

Snapshot id: `{sid}`
Snapshot date: {doc['snapshot-date']}
Made by envgen {__version__}.

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


def _citation(doc: dict, sid: str) -> bytes:
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
    return text.encode()


def _ti(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.REGTYPE
    ti.size = size
    ti.mode = 0o644
    ti.mtime = mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


class _HashingReader:
    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.h = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        b = self.fh.read(n)
        self.h.update(b)
        return b


def write_bundle(store: Store, sid: str, out: str | os.PathLike, compression: str = DEFAULT_COMPRESSION,
                 level: int | None = None, force: bool = False, env: dict | None = None,
                 runs: list[dict] | None = None) -> dict:
    """Write the bundle of snapshot *sid*.

    *env* (builder, tree digest) becomes ``env.json``: what a rebuild must give.
    *runs* (provenance records, host paths removed) become ``runs.json``, and
    their input and output files travel as objects (roles ``run-input`` and
    ``run-output``), so ``envgen verify`` can rerun them from the bundle alone.
    """
    out = Path(out)
    if compression not in COMPRESSIONS:
        raise EnvgenError(f"unknown compression {compression!r}", hint=f"use one of {', '.join(COMPRESSIONS)}")
    if out.exists() and not force:
        if out.is_dir():
            raise EnvgenError(f"{out}: is a directory", hint="give a file name with -o")
        if not is_bundle(out):
            raise EnvgenError(f"{out}: exists and is not an envgen bundle; not overwriting", hint="use --force")
    doc = load_root(store, sid)
    mtime = int(dt.datetime.strptime(doc["snapshot-date"], "%Y-%m-%dT%H:%M:%SZ")
                .replace(tzinfo=dt.timezone.utc).timestamp())
    snap_bytes = store.read_root(sid)

    roles: dict[str, str] = {}
    for o in doc["objects"]:
        roles.setdefault(o["sha256"], o["role"])
        if not store.has(o["sha256"]):
            raise EnvgenError(f"object {o['sha256']} ({o['name']}) of snapshot {sid} is missing from {store.root}",
                              hint="run `envgen snapshot SPEC` first")
    for r in runs or []:
        for role, files in (("run-input", r["inputs"]), ("run-output", r["outputs"])):
            for path, info in files.items():
                if not store.has(info["sha256"]):
                    raise EnvgenError(f"run {r['id']}: {role[4:]} {path} ({info['sha256'][:16]}…) is not in the store")
                roles.setdefault(info["sha256"], role)
    small: dict[str, tuple[str, bytes]] = {
        SNAPSHOT: ("snapshot", snap_bytes),
        SOURCE: ("envgen-source", _envgen_source(mtime)),
        "README.md": ("readme", _readme(doc, sid)),
        "CITATION.cff": ("citation", _citation(doc, sid)),
    }
    if env is not None:
        small[ENV] = ("env", json.dumps(env, sort_keys=True, indent=1).encode() + b"\n")
    if runs:
        small[RUNS] = ("runs", json.dumps(sorted(runs, key=lambda r: r["id"]), sort_keys=True, indent=1).encode() + b"\n")
    members = []
    for path, (role, data) in small.items():
        members.append({"path": path, "role": role, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    for sha, role in roles.items():
        members.append({"path": f"objects/sha256/{sha}", "role": role, "sha256": sha, "size": store.size_of(sha)})
    members.sort(key=lambda m: m["path"])
    manifest = {
        "format-version": FORMAT_VERSION,
        "kind": KIND,
        "snapshot-id": sid,
        "name": doc["name"],
        "snapshot-date": doc["snapshot-date"],
        "envgen-version": __version__,
        "members": members,
    }
    mbytes = json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False).encode() + b"\n"

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            comp = _Compressed(fh, compression, level)
            with tarfile.open(fileobj=comp, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:
                tf.addfile(_ti(MANIFEST, len(mbytes), mtime), io.BytesIO(mbytes))
                for m in members:
                    if m["path"] in small:
                        data = small[m["path"]][1]
                        tf.addfile(_ti(m["path"], len(data), mtime), io.BytesIO(data))
                        continue
                    with store.open(m["sha256"]) as src:
                        hr = _HashingReader(src)
                        tf.addfile(_ti(m["path"], m["size"], mtime), hr)
                        if hr.h.hexdigest() != m["sha256"]:
                            raise EnvgenError(f"store object {m['sha256']} is corrupt",
                                              hint="run `envgen store verify --repair` and `envgen snapshot SPEC`")
            comp.close()
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(out.parent)
    return {"bundle": str(out), "id": sid, "name": doc["name"], "compression": compression,
            "level": DEFAULT_LEVELS[compression] if level is None else level,
            "members": len(members) + 1, "content_bytes": sum(m["size"] for m in members) + len(mbytes),
            "bytes": out.stat().st_size, "sha256": file_sha256(out)}


# --------------------------------------------------------------------------- reading


def _refuse(bundle: Path, why: str) -> EnvgenError:
    return EnvgenError(f"{bundle}: refused: {why}", hint="nothing was restored")


def _check_manifest(bundle: Path, raw: bytes) -> dict:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise _refuse(bundle, "the bundle manifest is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise EnvgenError(f"{bundle}: not an envgen bundle", hint="make one with `envgen archive SPEC -o FILE`")
    fv = doc.get("format-version")
    if not isinstance(fv, int):
        raise _refuse(bundle, "the bundle manifest has no format-version")
    if fv > FORMAT_VERSION:
        raise EnvgenError(f"{bundle}: bundle format {fv} needs envgen that reads format {fv} "
                          f"(this envgen {__version__} reads up to {FORMAT_VERSION})", hint="upgrade envgen")
    sid = doc.get("snapshot-id")
    members = doc.get("members")
    if not is_sha256(sid) or not isinstance(members, list):
        raise _refuse(bundle, "the bundle manifest lacks snapshot-id or members")
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


def restore_bundle(store: Store, bundle: str | os.PathLike, into: str | os.PathLike | None = None) -> dict:
    """Check every member, then load the objects into *store*, write the root, and optionally the work tree."""
    bundle = Path(bundle)
    if not bundle.is_file():
        raise EnvgenError(f"{bundle}: no such file")
    into_p = Path(into) if into is not None else None
    if into_p is not None and into_p.exists() and (not into_p.is_dir() or any(into_p.iterdir())):
        raise EnvgenError(f"{into_p}: exists and is not an empty directory", hint="give --into a new or empty directory")
    with store.session():
        stage = store.staging_dir("restore-")
        try:
            return _restore(store, bundle, into_p, stage)
        finally:
            remove_tree(stage)


def _restore(store: Store, bundle: Path, into: Path | None, stage: Path) -> dict:
    staged: dict[str, Path | None] = {}
    damaged: list[dict] = []
    with open(bundle, "rb") as fh:
        try:
            stream = open_decompressed(fh)
            tf = tarfile.open(fileobj=stream, mode="r|")
        except (tarfile.TarError, OSError, EOFError, zstandard.ZstdError, lzma.LZMAError):
            raise EnvgenError(f"{bundle}: not an envgen bundle (not a tar archive)",
                              hint="make one with `envgen archive SPEC -o FILE`") from None
        try:
            first = tf.next()
            if first is None or first.name != MANIFEST:
                raise EnvgenError(f"{bundle}: not an envgen bundle (no {MANIFEST} first)",
                                  hint="make one with `envgen archive SPEC -o FILE`")
            if not first.isreg() or first.size > MAX_MANIFEST:
                raise _refuse(bundle, f"{MANIFEST} is not a regular file of sane size")
            doc = _check_manifest(bundle, tf.extractfile(first).read())
            expected = {m["path"]: m for m in doc["members"]}
            seen = {MANIFEST}
            i = 0
            while True:
                ti = tf.next()
                if ti is None:
                    break
                i += 1
                why = srcpack.check_member(ti.name)
                if why:
                    raise _refuse(bundle, f"member {ti.name!r}: {why}")
                if not ti.isreg():
                    kind = ("symlink" if ti.issym() else "hardlink" if ti.islnk() else "directory" if ti.isdir()
                            else "device" if ti.isdev() else "fifo" if ti.isfifo() else "special file")
                    raise _refuse(bundle, f"member {ti.name!r} is a {kind}; only regular files are allowed")
                if ti.name in seen:
                    raise _refuse(bundle, f"duplicate member {ti.name!r}")
                seen.add(ti.name)
                m = expected.get(ti.name)
                if m is None:
                    raise _refuse(bundle, f"member {ti.name!r} is not in the manifest")
                if ti.size != m["size"]:
                    raise _refuse(bundle, f"member {ti.name!r} has {ti.size} bytes, the manifest says {m['size']}")
                dest = stage / f"m{i:06d}"
                h = hashlib.sha256()
                src = tf.extractfile(ti)
                with open(dest, "wb") as out:
                    while True:
                        b = src.read(CHUNK)
                        if not b:
                            break
                        h.update(b)
                        out.write(b)
                    out.flush()
                    os.fsync(out.fileno())
                if h.hexdigest() != m["sha256"]:
                    if m.get("role") in EVIDENCE_ROLES:
                        damaged.append({"path": ti.name, "role": m["role"], "expected": m["sha256"],
                                        "actual": h.hexdigest()})
                        dest.unlink()
                        staged[ti.name] = None
                        continue
                    raise _refuse(bundle, f"member {ti.name!r}: sha256 {h.hexdigest()}, the manifest says {m['sha256']}")
                staged[ti.name] = dest
        except (tarfile.TarError, EOFError, zstandard.ZstdError, lzma.LZMAError, gzip.BadGzipFile) as exc:
            raise _refuse(bundle, f"damaged archive: {exc}") from None
        finally:
            tf.close()

    missing = sorted(set(expected) - set(staged))
    if missing:
        raise _refuse(bundle, f"members listed in the manifest are absent: {', '.join(missing[:5])}")
    sid = doc["snapshot-id"]
    snap_bytes = staged[SNAPSHOT].read_bytes()
    if hashlib.sha256(snap_bytes).hexdigest() != sid:
        raise _refuse(bundle, f"{SNAPSHOT} does not hash to the snapshot id {sid}")
    snap = parse_manifest(snap_bytes, f"{bundle}:{SNAPSHOT}")
    wanted = {o["sha256"] for o in snap["objects"]}
    present = {p.split("/")[2] for p in staged if p.startswith("objects/")}
    if wanted - present:
        raise _refuse(bundle, f"snapshot objects absent from the bundle: {', '.join(sorted(wanted - present)[:3])}")
    env_doc = _json_member(bundle, staged, ENV, dict)
    runs = _json_member(bundle, staged, RUNS, list) or []
    if not all(isinstance(r, dict) and isinstance(r.get("inputs", {}), dict) and isinstance(r.get("outputs", {}), dict)
               for r in runs):
        raise _refuse(bundle, f"{RUNS} holds a malformed run record")
    evidence = {info["sha256"] for r in runs for key in ("inputs", "outputs")
                for info in (r.get(key) or {}).values() if isinstance(info, dict)}
    if present - wanted - evidence:
        raise _refuse(bundle, f"objects not in the snapshot: {', '.join(sorted(present - wanted - evidence)[:3])}")

    # the work tree: validate every path and every source pack before anything leaves the stage
    tree = stage / "tree"
    if into is not None:
        tree.mkdir()
        for o in snap["objects"]:
            if o["role"] not in ("spec", "lock", "local-source"):
                continue
            rel = o.get("path")
            if not isinstance(rel, str) or (srcpack.check_member(rel) and not (o["role"] == "local-source" and rel == ".")):
                raise _refuse(bundle, f"{o['role']} {o.get('name')!r} has an unsafe path {rel!r}")
            src = staged[f"objects/sha256/{o['sha256']}"]
            target = tree / rel
            if o["role"] == "local-source":
                try:
                    srcpack.unpack(src, target, f"{bundle}: local project {o['name']}")
                except tarfile.TarError as exc:
                    raise _refuse(bundle, f"local project {o['name']}: damaged tar: {exc}") from None
            else:
                if target.exists():
                    raise _refuse(bundle, f"two files at {rel!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, target)
                os.chmod(target, 0o644)

    # commit: objects into the store, the root, then the tree
    added = 0
    for path, p in staged.items():
        if path.startswith("objects/") and p is not None:
            sha = path.split("/")[2]
            if not store.has(sha):
                store.adopt(p, sha)
                added += 1
    store.write_root(sid, snap_bytes)
    if into is not None:
        into.mkdir(parents=True, exist_ok=True)
        for entry in sorted(tree.iterdir()):
            shutil.move(str(entry), str(into / entry.name))
    spec = next((o for o in snap["objects"] if o["role"] == "spec"), None)
    return {"bundle": str(bundle), "id": sid, "name": snap["name"], "objects": len(wanted), "added": added,
            "into": str(into) if into is not None else None,
            "spec": str(into / spec["path"]) if (into is not None and spec) else None,
            "env": env_doc, "runs": runs, "damaged": damaged}


def _json_member(bundle: Path, staged: dict, name: str, kind: type):
    p = staged.get(name)
    if p is None:
        return None
    try:
        value = json.loads(p.read_bytes())
    except ValueError:
        raise _refuse(bundle, f"{name} is not valid JSON") from None
    if not isinstance(value, kind):
        raise _refuse(bundle, f"{name} is not a JSON {kind.__name__}")
    return value
