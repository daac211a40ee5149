"""``envgen challenge``: is this build what another build makes?  (After ``guix challenge``.)

Two artifacts are compared by their *listings* (:mod:`envgen.builders.tree`):
one line per entry with its exact mode, its content's sha256 or its link target.
An artifact is any of

* an env tree (a directory; a store tree directory ``trees/KEY`` means its ``rootfs``);
* an OCI image layout (a directory with ``index.json``): its index, manifest and
  config as files, and every layer's tar entries under ``layers/NN-NAME/``;
* a SIF file: its Deffile, labels and SBOM objects under ``sif/``, and the
  squashfs partition's entries under ``rootfs/``;
* a squashfs file: its entries under ``rootfs/``.

:func:`challenge_snapshot` rebuilds a snapshot in a scratch store (the
snapshot's objects hard-linked, nothing downloaded) and compares the rebuild
with the tree already in the store.  Every differing path is named with how it
differs: ``mode``, ``size``, ``content``, ``type``, ``link target``, or
``missing in a``/``missing in b``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import html
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import proc
from .builders.tree import compare_listings, describe_difference, listing, sizes_of
from .errors import EnvgenError

MAX_DIFFOSCOPE = 20  # files handed to diffoscope in one report


@dataclass
class Side:
    """One artifact, listed: its lines, file sizes, and where each listed file's bytes can be read."""

    label: str
    kind: str
    lines: list[str]
    sizes: dict[str, int] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # listing path -> a file on disk (trees, unsquashed)
    blobs: dict[str, bytes] = field(default_factory=dict)  # listing path -> bytes (JSON documents, tar members)

    def read(self, path: str) -> bytes | None:
        if path in self.blobs:
            return self.blobs[path]
        if path in self.files:
            return self.files[path].read_bytes()
        return None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _blob_line(side: Side, path: str, data: bytes) -> None:
    side.lines.append(f"f 0644 {path} {_sha(data)}")
    side.sizes[path] = len(data)
    side.blobs[path] = data


def _tree_side(root: Path, label: str, prefix: str = "", kind: str = "tree") -> Side:
    lines = listing(root)
    sizes = sizes_of(root)
    if prefix:
        lines = [_prefixed(line, prefix) for line in lines]
        sizes = {prefix + p: s for p, s in sizes.items()}
    files = {p: root / p[len(prefix):] for p in sizes}
    return Side(label, kind, lines, sizes, files)


def _prefixed(line: str, prefix: str) -> str:
    kind, mode, rest = line.split(" ", 2)
    return f"{kind} {mode} {prefix}{rest}"


def _tar_side_lines(side: Side, data: bytes, prefix: str) -> None:
    """The entries of one layer tar (uncompressed bytes) under *prefix*, with their tar modes."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for m in tf.getmembers():
            path = prefix + m.name.rstrip("/")
            mode = m.mode & 0o7777
            if m.isdir():
                side.lines.append(f"d {mode:04o} {path}")
            elif m.issym():
                side.lines.append(f"l {mode:04o} {path} -> {m.linkname}")
            elif m.islnk():
                side.lines.append(f"l {mode:04o} {path} -> hardlink:{m.linkname}")
            elif m.isfile():
                fh = tf.extractfile(m)
                content = fh.read() if fh else b""
                side.lines.append(f"f {mode:04o} {path} {_sha(content)}")
                side.sizes[path] = len(content)
                side.blobs[path] = content
            else:
                side.lines.append(f"? {mode:04o} {path}")
            if m.uid or m.gid or m.uname or m.gname:
                side.lines.append(f"? 0000 {path}#owner {m.uid}:{m.gid}:{m.uname}:{m.gname}")


def _decompress(data: bytes, media_type: str) -> bytes:
    if media_type.endswith("+gzip"):
        return gzip.decompress(data)
    if media_type.endswith("+zstd"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data


def _oci_side(layout: Path, label: str) -> Side:
    side = Side(label, "oci", [])
    index_bytes = (layout / "index.json").read_bytes()
    _blob_line(side, "oci/index.json", index_bytes)
    index = json.loads(index_bytes)
    blobs = layout / "blobs" / "sha256"
    for mi, m in enumerate(index.get("manifests", [])):
        manifest_bytes = (blobs / m["digest"].split(":", 1)[1]).read_bytes()
        _blob_line(side, f"oci/{mi}/manifest.json", manifest_bytes)
        manifest = json.loads(manifest_bytes)
        _blob_line(side, f"oci/{mi}/config.json", (blobs / manifest["config"]["digest"].split(":", 1)[1]).read_bytes())
        for li, layer in enumerate(manifest.get("layers", [])):
            name = layer.get("annotations", {}).get("dev.envgen.layer", "layer")
            raw = (blobs / layer["digest"].split(":", 1)[1]).read_bytes()
            _tar_side_lines(side, _decompress(raw, layer["mediaType"]), f"layers/{li:02d}-{name}/")
    side.lines.sort(key=lambda line: line.split(" ", 2)[2].encode("utf-8", "surrogateescape"))
    return side


def _unsquash(image: Path, dest: Path, offset: int = 0) -> Path:
    tool = shutil.which("unsquashfs") or ("/usr/bin/unsquashfs" if os.path.exists("/usr/bin/unsquashfs") else None)
    if tool is None:
        raise EnvgenError("unsquashfs is not installed; it is needed to list a SIF or squashfs image",
                          hint="apt-get install squashfs-tools")
    args = [tool, "-no-progress", "-quiet", "-no-xattrs", "-d", str(dest)]
    if offset:
        args += ["-o", str(offset)]
    proc.run([*args, str(image)], "unsquashfs", lines=2)
    return dest


def _sif_side(path: Path, label: str, work: Path) -> Side:
    from .export import sif as S

    info = S.read_sif(path)
    side = Side(label, "sif", [])
    names = {S.DT_DEFFILE: "deffile", S.DT_LABELS: "labels.json", S.DT_SBOM: "sbom.cdx.json"}
    part = info.primary()
    for d in info.descriptors:
        if d is part:
            continue
        _blob_line(side, f"sif/{d.id:02d}-{names.get(d.datatype, hex(d.datatype))}", info.read(d))
    rootfs = _unsquash(path, work / "rootfs", offset=part.offset)
    tree = _tree_side(rootfs, label, prefix="rootfs/")
    side.lines += tree.lines
    side.sizes.update(tree.sizes)
    side.files.update(tree.files)
    side.lines.sort(key=lambda line: line.split(" ", 2)[2].encode("utf-8", "surrogateescape"))
    return side


def load_side(path: str | Path, work: Path, label: str | None = None) -> Side:
    """List the artifact at *path* (a tree, an OCI layout, a SIF or a squashfs file); scratch space in *work*."""
    path = Path(path)
    label = label or str(path)
    if path.is_dir():
        if (path / "index.json").is_file() and (path / "blobs").is_dir():
            return _oci_side(path, label)
        if (path / "rootfs").is_dir() and (path / "meta.json").is_file():
            path = path / "rootfs"
        return _tree_side(path, label)
    if not path.is_file():
        raise EnvgenError(f"{path}: no such file or directory")
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head[0x20:0x2A] == b"SIF_MAGIC\0":
        return _sif_side(path, label, work)
    if head[:4] == b"hsqs":
        tree = _tree_side(_unsquash(path, work / "rootfs"), label, prefix="rootfs/", kind="squashfs")
        return tree
    raise EnvgenError(f"{path}: not an env tree, OCI layout, SIF or squashfs image")


def compare_sides(a: Side, b: Side) -> list[dict]:
    return compare_listings(a.lines, b.lines, (a.sizes, b.sizes))


@contextlib.contextmanager
def scratch(keep: str | None = None, prefix: str = "envgen-challenge-") -> Iterator[Path]:
    if keep:
        d = Path(keep)
        d.mkdir(parents=True, exist_ok=True)
        yield d
        return
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    finally:
        from .fsutil import remove_tree

        remove_tree(d)


def challenge_paths(a: str | Path, b: str | Path, work: Path) -> tuple[Side, Side, list[dict]]:
    (work / "a").mkdir(parents=True, exist_ok=True)
    (work / "b").mkdir(parents=True, exist_ok=True)
    sa = load_side(a, work / "a")
    sb = load_side(b, work / "b")
    return sa, sb, compare_sides(sa, sb)


# --------------------------------------------------------------------------- rebuilding a snapshot


def scratch_store(base, snapshot_id: str, dest: Path, *, copy: bool = False):
    """A new store at *dest* holding the snapshot *snapshot_id* of *base* (objects hard-linked, or copied)."""
    from .snapshot import Store, load_root

    manifest = load_root(base, snapshot_id)
    store = Store(dest)
    store.paths.objects.mkdir(parents=True, exist_ok=True)
    store.paths.roots.mkdir(parents=True, exist_ok=True)
    for o in manifest["objects"]:
        if not base.has(o["sha256"]):
            continue  # e.g. sdists the snapshot did not fetch
        target = store.paths.objects / o["sha256"]
        if target.exists():
            continue
        src = base.path_of(o["sha256"])
        if copy:
            shutil.copyfile(src, target)
            os.chmod(target, 0o444)
        else:
            try:
                os.link(src, target)
            except OSError:
                shutil.copyfile(src, target)
                os.chmod(target, 0o444)
    shutil.copyfile(base.paths.roots / f"{snapshot_id}.json", store.paths.roots / f"{snapshot_id}.json")
    return Store(dest)


def challenge_snapshot(store, snapshot_id: str, builder: str, against: str, work: Path,
                       note=lambda m: None) -> tuple[Side, Side, list[dict]]:
    """Compare *builder*'s tree of the snapshot in *store* with a fresh build by *against* in a scratch store."""
    from .builders import get_builder

    have = get_builder(builder).cached(store, snapshot_id)
    if have is None:
        raise EnvgenError(f"no {builder} tree of snapshot {snapshot_id[:16]}… in the store to challenge",
                          hint=f"run `envgen build SPEC --builder {builder}` first")
    note(f"listing the {builder} tree in the store")
    a = _tree_side(have.rootfs, f"{builder} tree in the store ({have.rootfs})")
    scratch_dir = work / "rebuild-store"
    fresh_store = scratch_store(store, snapshot_id, scratch_dir)
    note(f"rebuilding snapshot {snapshot_id[:16]}… with the {against} builder in a scratch store")
    res = get_builder(against).build(fresh_store, snapshot_id, force=True, note=note)
    b = _tree_side(res.rootfs, f"fresh {against} rebuild ({res.rootfs})")
    return a, b, compare_sides(a, b)


# --------------------------------------------------------------------------- reports


def result_doc(a: Side, b: Side, diffs: list[dict]) -> dict:
    return {"a": a.label, "b": b.label, "kind": [a.kind, b.kind], "identical": not diffs,
            "entries": [len(a.lines), len(b.lines)], "differences": diffs}


def listing_digest(side: Side) -> str:
    """The sha256 of a side's listing lines (each ending in a newline): for a tree, its tree digest."""
    return _sha("".join(line + "\n" for line in side.lines).encode())


def attestation(a: Side, b: Side, doc: dict, sid: str | None, name: str | None, args) -> bytes:
    """The in-toto Statement of a challenge: what was compared or rebuilt, both listings' digests, the verdict.

    No host path enters it: a side is named by its file name only.
    """
    from . import attest

    da, db = listing_digest(a), listing_digest(b)
    if sid is not None and name is not None:
        subjects = [attest.subject("snapshot.json", sid, "application/json"), attest.tree_subject(name, da)]
        rebuilt = {"snapshotId": sid, "builder": args.builder, "against": args.against or args.builder}
    else:
        subjects = [attest.subject(os.path.basename(str(args.a).rstrip("/")) or "a", da),
                    attest.subject(os.path.basename(str(args.b).rstrip("/")) or "b", db)]
        rebuilt = {"compared": [subjects[0]["name"], subjects[1]["name"]], "kinds": [a.kind, b.kind]}
    got = {"a": {"listingSha256": da, "entries": len(a.lines)}, "b": {"listingSha256": db, "entries": len(b.lines)},
           "differing": len(doc["differences"]),
           "differingPaths": sorted(d["path"] for d in doc["differences"])[:100]}
    stmt = attest.rebuild_statement(subjects, tool="challenge", rebuilt=rebuilt, got=got,
                                    verdict="identical" if doc["identical"] else "differing")
    return attest.to_bytes(stmt)


def human_lines(doc: dict) -> list[str]:
    if doc["identical"]:
        return [f"identical: {doc['entries'][0]} entries", f"  a: {doc['a']}", f"  b: {doc['b']}"]
    out = [f"{len(doc['differences'])} differing entries", f"  a: {doc['a']}", f"  b: {doc['b']}"]
    out += ["  " + describe_difference(d) for d in doc["differences"]]
    return out


def diffoscope_path() -> str | None:
    return shutil.which("diffoscope")


def _diffoscope(a: Side, b: Side, path: str, work: Path) -> str:
    tool = diffoscope_path()
    assert tool is not None
    da, db = a.read(path), b.read(path)
    if da is None or db is None:
        return "(bytes not available)"
    name = os.path.basename(path) or "file"
    pa, pb = work / "diffoscope" / "a" / name, work / "diffoscope" / "b" / name
    for p, data in ((pa, da), (pb, db)):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    try:
        r = subprocess.run([tool, "--text", "-", "--no-progress", "--max-text-report-size", "200000",
                            str(pa), str(pb)], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "(diffoscope timed out)"
    finally:
        pa.unlink()
        pb.unlink()
    return r.stdout or r.stderr


def to_html(doc: dict, a: Side, b: Side, work: Path) -> str:
    esc = html.escape
    tool = diffoscope_path()
    parts = ["<!doctype html><meta charset=utf-8><title>envgen challenge</title>",
             "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}"
             "pre{background:#f4f4f4;padding:6px;overflow:auto}</style>",
             "<h1>envgen challenge</h1>",
             f"<p>a: <code>{esc(doc['a'])}</code><br>b: <code>{esc(doc['b'])}</code></p>"]
    if doc["identical"]:
        parts.append(f"<p><b>identical</b>: {doc['entries'][0]} entries.</p>")
        return "\n".join(parts) + "\n"
    parts.append(f"<p><b>{len(doc['differences'])} differing entries</b></p>")
    parts.append("<table><tr><th>path</th><th>differs in</th><th>a</th><th>b</th></tr>")
    for d in doc["differences"]:
        parts.append(f"<tr><td><code>{esc(d['path'])}</code></td><td>{esc(', '.join(d['differences']))}</td>"
                     f"<td>{esc(d['a'] or 'absent')}</td><td>{esc(d['b'] or 'absent')}</td></tr>")
    parts.append("</table>")
    content = [d for d in doc["differences"] if "content" in d["differences"]]
    if tool is None:
        parts.append("<p>diffoscope is not installed (<code>apt-get install diffoscope-minimal</code>): "
                     "no content diffs in this report.</p>")
    else:
        parts.append(f"<h2>diffoscope</h2><p>{len(content[:MAX_DIFFOSCOPE])} of {len(content)} files "
                     "with differing content.</p>")
        for d in content[:MAX_DIFFOSCOPE]:
            parts.append(f"<h3><code>{esc(d['path'])}</code></h3><pre>{esc(_diffoscope(a, b, d['path'], work))}</pre>")
    return "\n".join(parts) + "\n"
