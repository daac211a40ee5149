"""The Nix builder: snapshot -> per-spec data for the flake -> seeded store -> ``nix build``.

No nixpkgs, no binary cache, no network.  The flake (``flake.nix``,
``envgen/nix/lib/*.nix``) reads one JSON file per spec (``nix/specs/NAME.json``,
written here from the lock and the snapshot manifest) and turns every
artifact into a fixed-output derivation keyed by its sha256.  The flake's
files are package data (``envgen/nix/``), copied into each flake directory
by :func:`ensure_flake`, so an installed envgen needs no source checkout.  ``seed`` puts
those artifacts into the Nix store from the envgen store
(``nix-store --add-fixed``), so Nix finds every input already valid and never
downloads.  The trust root is a static busybox taken from the pinned
``busybox-static`` .deb, added by NAR hash (``--add-fixed --recursive``).

The output has the embedded builder's root-filesystem layout, so its tree
digest (:func:`envgen.builders.tree.tree_digest`) can be compared with the
embedded one and ``envgen run --runtime nix`` runs it under bwrap the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .. import formats
from ..errors import BuildError, EnvgenError
from ..fsutil import atomic_write, canonical_json, file_sha256
from ..lock import pylock
from ..proc import run as run_tool
from ..proc import tail as _tail
from ..snapshot import Store
from . import debs
from .base import BuildInputs, BuildResult, Note, build_key, quiet
from .embedded import BASE_TOOLS, EXCLUDED_FROM_ROOTS
from .tree import tree_digest

NAME = "nix"
VERSION = 3  # 2: the tree digest covers exact modes; 3: the shared assembler (envgen/builders/assemble.py)
NIX_SETTINGS = {
    "experimental-features": "nix-command flakes",
    "sandbox": "true",
    "substituters": "",  # no binary cache: nothing is downloaded, and no time is lost retrying one
}
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the envgen package, installed or in a checkout
NIX_LIB = "envgen/nix/lib"  # the Nix library's path in a flake directory (and in a checkout: the package's own)
# the other files of a flake directory: {path there: path in the package}
FLAKE_FILES = {
    "flake.nix": "nix/template/flake.nix",
    "flake.lock": "nix/template/flake.lock",
    "nix/default.nix": "nix/template/default.nix",
    "envgen/layout.py": "layout.py",  # envgen/nix/lib/env.nix and wheel.nix import these two
    "envgen/builders/assemble.py": "builders/assemble.py",
    "envgen/builders/enter.sh": "builders/enter.sh",  # and the launcher that makes a tree / for it
}
PYTHON_COMMANDS = {"python", "python3"}


# --------------------------------------------------------------------------- Nix store paths, computed


NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"


def nix32(data: bytes) -> str:
    n = len(data)
    out = []
    for i in range((n * 8 - 1) // 5, -1, -1):
        bit = i * 5
        j, k = divmod(bit, 8)
        c = data[j] >> k
        if j + 1 < n:
            c |= data[j + 1] << (8 - k)
        out.append(NIX32[c & 0x1F])
    return "".join(out)


def _store_path(kind: str, hex_digest: str, name: str, store_dir: str = "/nix/store") -> str:
    h = hashlib.sha256(f"{kind}:sha256:{hex_digest}:{store_dir}:{name}".encode()).digest()
    folded = bytearray(20)
    for i, c in enumerate(h):
        folded[i % 20] ^= c
    return f"{store_dir}/{nix32(bytes(folded))}-{name}"


def fixed_path(name: str, sha256: str, recursive: bool = False) -> str:
    """The store path of a fixed-output artifact (what ``nix-store --print-fixed-path`` says)."""
    if recursive:
        return _store_path("source", sha256, name)
    inner = hashlib.sha256(f"fixed:out:sha256:{sha256}:".encode()).hexdigest()
    return _store_path("output:out", inner, name)


def _nar_str(b: bytes) -> bytes:
    return len(b).to_bytes(8, "little") + b + b"\0" * (-len(b) % 8)


def nar_single_executable(dirs: list[str], filename: str, data: bytes) -> bytes:
    """The NAR of nested directories *dirs* holding one executable file (the busybox trust root)."""
    s = _nar_str
    parts = [s(b"nix-archive-1"), s(b"("), s(b"type"), s(b"directory")]
    for d in dirs:
        parts += [s(b"entry"), s(b"("), s(b"name"), s(d.encode()), s(b"node"), s(b"("), s(b"type"), s(b"directory")]
    parts += [s(b"entry"), s(b"("), s(b"name"), s(filename.encode()), s(b"node"), s(b"("), s(b"type"),
              s(b"regular"), s(b"executable"), s(b""), s(b"contents"), s(data), s(b")"), s(b")")]
    for _ in dirs:
        parts += [s(b")"), s(b")")]
    parts.append(s(b")"))
    return b"".join(parts)


def clean_name(filename: str) -> str:
    """A valid store name for an artifact file name (no ``%``, ``~``, ``:`` ...)."""
    name = re.sub(r"[^A-Za-z0-9+._?=-]", "_", filename)
    return name.lstrip(".") or "artifact"


# --------------------------------------------------------------------------- the nix command


def nix_env() -> dict[str, str]:
    settings = dict(NIX_SETTINGS)
    try:
        import grp

        grp.getgrnam("nixbld")
    except (KeyError, ImportError):
        settings["build-users-group"] = ""  # single-user (root) Nix without build users
    ours = "\n".join(f"{k} = {v}" for k, v in settings.items())
    # ours last: a user's NIX_CONFIG may add settings but cannot turn the sandbox or the cache back on
    return {**os.environ, "NIX_CONFIG": (os.environ.get("NIX_CONFIG", "") + "\n" + ours).strip() + "\n"}


def require_nix() -> None:
    for tool in ("nix", "nix-store"):
        if shutil.which(tool) is None:
            raise EnvgenError(
                f"Nix is not installed (no `{tool}` on PATH); the nix builder needs it",
                hint="apt-get install nix-bin (Debian/Ubuntu); "
                     "the embedded builder (`envgen build SPEC`) works without Nix")


def _nix(args: list[str], what: str) -> subprocess.CompletedProcess:
    return run_tool(args, what, env=nix_env())


# --------------------------------------------------------------------------- per-spec data


def flake_dir_for(spec_path: Path) -> Path:
    """Where the flake lives: the nearest ancestor holding flake.nix and envgen's Nix library, else the
    project root of specs/."""
    spec_path = Path(os.path.abspath(spec_path))
    for d in spec_path.parents:
        if (d / "flake.nix").is_file() and (d / NIX_LIB).is_dir():
            return d
    return spec_path.parent.parent if spec_path.parent.name == "specs" else spec_path.parent


def flake_files() -> dict[str, Path]:
    """{path in a flake directory: the package file it is copied from}, sorted."""
    lib = PACKAGE_DIR / "nix" / "lib"
    files = {f"{NIX_LIB}/{f.name}": f for f in lib.glob("*") if f.suffix in (".nix", ".sh") and f.is_file()}
    files.update({rel: PACKAGE_DIR / src for rel, src in FLAKE_FILES.items()})
    missing = sorted(str(p) for p in [*files.values(), lib / "outputs.nix"] if not p.is_file())
    if missing:
        raise EnvgenError(f"envgen's Nix library is incomplete: {', '.join(missing)} missing",
                          hint="reinstall envgen: its package ships envgen/nix/")
    return dict(sorted(files.items()))


def ensure_flake(flake_dir: Path) -> None:
    """Write flake.nix, flake.lock, nix/default.nix, envgen/nix/lib and the two envgen modules the library
    imports into *flake_dir*, from the installed package (files already equal are left alone)."""
    files = flake_files()
    flake_dir = Path(flake_dir)
    ours = (flake_dir / "envgen").resolve() == PACKAGE_DIR  # envgen's own checkout: its envgen/ is the package
    if not ours and (flake_dir / "envgen" / "__init__.py").is_file():
        raise EnvgenError(f"{flake_dir} holds the sources of another envgen ({flake_dir / 'envgen'}), "
                          f"which the flake's envgen/ files would overwrite",
                          hint="pass --flake-dir DIR, or run that checkout's own envgen")
    for rel, src in files.items():
        if ours and rel.startswith("envgen/"):
            continue
        _write_if_changed(flake_dir / rel, src.read_bytes())


def _write_if_changed(path: Path, data: bytes) -> bool:
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def _busybox_deb(lock: pylock.Lock) -> pylock.DebPackage:
    deb = next((d for d in lock.debian.packages if d.role == "build" and d.name == "busybox-static"), None)
    if deb is None:
        raise EnvgenError("the lock has no busybox-static build .deb (the Nix builder's trust root)",
                          hint="re-lock the spec with a current envgen")
    return deb


def busybox_binary(store: Store, lock: pylock.Lock) -> bytes:
    deb = _busybox_deb(lock)
    data = store.read_verified(deb.sha256, Path(deb.filename).name)
    with debs.open_data(io.BytesIO(data), deb.name) as tf:
        for m in tf.getmembers():
            content = tf.extractfile(m) if m.isfile() and debs.member_path(m.name) == "bin/busybox" else None
            if content is not None:
                return content.read()
    raise BuildError(f"{deb.filename}: no bin/busybox inside")


def _artifact(filename: str, url: str, sha256: str) -> dict:
    """An artifact for fetch.nix: its store name, its original file name, URL and sha256."""
    return {"name": clean_name(filename), "file": filename, "url": url, "sha256": sha256}


def spec_data(inputs: BuildInputs) -> tuple[dict, dict[str, bytes]]:
    """(the JSON data the flake reads for a snapshot, {sha256: bytes} of the generated inputs)."""
    store, lock = inputs.store, inputs.lock
    lock_bytes = inputs.lock_bytes
    manifest_bytes = canonical_json(inputs.manifest)
    generated = {hashlib.sha256(b).hexdigest(): b for b in (lock_bytes, manifest_bytes)}
    bb_deb = _busybox_deb(lock)
    bb = busybox_binary(store, lock)

    def debs_of(role: str) -> list[dict]:
        return [_artifact(Path(d.filename).name, d.url, d.sha256)
                for d in sorted(lock.debian.packages, key=lambda d: d.name)
                if d.role == role and d.name not in EXCLUDED_FROM_ROOTS]

    command = inputs.run_command()
    local = dict(inputs.local_sources())
    sources = []
    tool_wheels = {p.wheels[0].filename: p.wheels[0] for p in lock.build_tools if p.wheels}
    for src in inputs.sources_to_build():
        sb = lock.source_build(src.name)
        if src.name in local or (sb is not None and sb.reason == "vcs"):  # a pack of envgen's, seeded from its store
            name = clean_name(f"{src.name}-source.tar")
            art = {"name": name, "file": f"{src.name}.tar", "url": f"file:///envgen-nix-seed/{name}",
                   "sha256": src.source_sha256}
        else:
            pkg = lock.package(src.name)
            assert pkg is not None and pkg.sdist is not None
            art = _artifact(pkg.sdist.filename, pkg.sdist.url, pkg.sdist.sha256)
        sources.append({"project": src.name, "source": art, "backend": src.backend,
                        "backendPath": list(src.backend_path),
                        "requires": [_artifact(f, tool_wheels[f].url, sha) for f, sha in src.requires]})
    base_tools = {n.replace("-", "_"): inputs.tool_wheel(n) for n in BASE_TOOLS}
    lock_sha = hashlib.sha256(lock_bytes).hexdigest()
    data = {
        **formats.header("envgen-nix-data"),
        "generator": "envgen nix",
        "name": lock.name,
        "snapshot": inputs.snapshot_id,
        "python": lock.python,
        "pythonFull": inputs.python_full_version(),
        "epoch": inputs.epoch,
        "command": command,
        "commandIsPython": Path(command[0]).name not in PYTHON_COMMANDS | {f"python{lock.python}"},
        "busybox": {
            "name": clean_name(f"busybox-static-{bb_deb.version}"),
            "url": bb_deb.url,
            "narHash": hashlib.sha256(nar_single_executable(["bin"], "busybox", bb)).hexdigest(),
            "deb": _artifact(Path(bb_deb.filename).name, bb_deb.url, bb_deb.sha256),
        },
        "debs": debs_of("runtime"),
        "buildDebs": debs_of("build"),
        "wheels": sorted((_artifact(w.filename, w.url, w.sha256) for p in lock.packages if not p.is_local
                          for w in p.wheels), key=lambda a: a["name"]),
        "tools": {k: _artifact(w.filename, w.url, w.sha256) for k, w in sorted(base_tools.items())},
        "sources": sources,
        "lock": {"name": clean_name(f"pylock.{lock.name}.toml"), "sha256": lock_sha,
                 "url": f"file:///envgen-nix-seed/pylock.{lock.name}.toml"},
        "manifest": {"name": clean_name(f"snapshot-{lock.name}.json"), "sha256": inputs.snapshot_id,
                     "url": f"file:///envgen-nix-seed/snapshot-{lock.name}.json"},
    }
    return data, generated


def generate(inputs: BuildInputs, flake_dir: Path) -> tuple[Path, dict, dict]:
    """Write nix/specs/NAME.json (and the flake, if *flake_dir* has none); return (json path, data, generated)."""
    flake_dir = Path(flake_dir)
    ensure_flake(flake_dir)
    data, generated = spec_data(inputs)
    out = flake_dir / "nix" / "specs" / f"{inputs.lock.name}.json"
    _write_if_changed(out, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
    return out, data, generated


# --------------------------------------------------------------------------- seeding


def flat_items(data: dict) -> list[dict]:
    """Every artifact the flake's derivations fetch (once each), for seeding."""
    items = data["debs"] + data["buildDebs"] + [data["busybox"]["deb"]] + data["wheels"] + list(data["tools"].values())
    for src in data["sources"]:
        items += [src["source"], *src["requires"]]
    items += [data["lock"], data["manifest"]]
    seen: dict[tuple[str, str], dict] = {}
    for it in items:
        seen.setdefault((it["name"], it["sha256"]), it)
    return list(seen.values())


def seed(store: Store, data: dict, generated: dict[str, bytes], lock: pylock.Lock, note=lambda m: None) -> dict:
    """Put every input of the spec's derivations into the Nix store; verify the ones already there."""
    require_nix()
    items = flat_items(data)
    bb = data["busybox"]
    bb_path = fixed_path(bb["name"], bb["narHash"], recursive=True)
    paths = {fixed_path(it["name"], it["sha256"]): it for it in items}
    proc = _nix(["nix-store", "--check-validity", "--print-invalid", *paths, bb_path], "checking the Nix store")
    invalid = set(proc.stdout.split())
    present = [p for p in paths if p not in invalid]
    for p in present:  # a seeded file may have been changed since (root can write the store)
        actual = file_sha256(p)
        if actual != paths[p]["sha256"]:
            raise EnvgenError(
                f"hash mismatch in the Nix store: {p} should hash to {paths[p]['sha256'][:16]}… "
                f"but hashes to {actual[:16]}…",
                hint=f"delete it (`nix-store --delete {p}`) and run `envgen nix seed SPEC` again")
    if bb_path not in invalid:
        binary = Path(bb_path, "bin", "busybox").read_bytes()
        if hashlib.sha256(nar_single_executable(["bin"], "busybox", binary)).hexdigest() != bb["narHash"]:
            raise EnvgenError(f"hash mismatch in the Nix store: the busybox trust root {bb_path} was changed",
                              hint=f"delete it (`nix-store --delete {bb_path}`) and run `envgen nix seed SPEC` again")
    todo = [p for p in paths if p in invalid]
    added = 0
    with tempfile.TemporaryDirectory(prefix="envgen-seed-") as tmp:
        files = []
        for p in todo:
            it = paths[p]
            target = Path(tmp) / it["name"]
            if it["sha256"] in generated:
                target.write_bytes(generated[it["sha256"]])
            else:
                if not store.has(it["sha256"]):
                    raise EnvgenError(
                        f"{it['name']} is not seeded into the Nix store and not in the envgen store, "
                        "and the build is offline", hint="run `envgen snapshot SPEC`, then `envgen nix seed SPEC`")
                src = store.path_of(it["sha256"])
                actual = file_sha256(str(src))
                if actual != it["sha256"]:
                    raise EnvgenError(f"store object corrupted: {it['name']} should hash to {it['sha256'][:16]}… "
                                      f"but hashes to {actual[:16]}…",
                                      hint="run `envgen store verify`, delete it and `envgen snapshot SPEC` again")
                try:
                    os.link(src, target)
                except OSError:
                    shutil.copyfile(src, target)
            files.append(str(target))
        if files:
            note(f"seeding {len(files)} artifacts into the Nix store")
            for i in range(0, len(files), 200):
                out = _nix(["nix-store", "--add-fixed", "sha256", *files[i:i + 200]], "nix-store --add-fixed")
                added += len(out.stdout.split())
        if bb_path in invalid:
            d = Path(tmp) / "bb" / bb["name"]
            (d / "bin").mkdir(parents=True)
            (d / "bin" / "busybox").write_bytes(busybox_binary(store, lock))
            os.chmod(d / "bin" / "busybox", 0o755)
            out = _nix(["nix-store", "--add-fixed", "--recursive", "sha256", str(d)], "adding the busybox trust root")
            if out.stdout.strip() != bb_path:
                raise EnvgenError(f"the busybox trust root landed at {out.stdout.strip()}, expected {bb_path}")
            added += 1
    missing = _nix(["nix-store", "--check-validity", "--print-invalid", *paths, bb_path], "checking the Nix store")
    if missing.stdout.strip():
        raise EnvgenError(f"seeding left these paths invalid: {missing.stdout.split()[:3]}")
    return {"added": added, "present": len(paths) + 1 - added, "total": len(paths) + 1}


# --------------------------------------------------------------------------- building


def nix_build(flake_dir: Path, attr: str, out_link: Path | None = None, *, check: bool = False,
              data: dict | None = None) -> str:
    """``nix build`` one attribute of nix/default.nix, sandboxed and offline; return its store path."""
    require_nix()
    args = ["nix", "build", "--offline", "-f", str(flake_dir / "nix" / "default.nix"), attr, "-L"]
    args += ["--out-link", str(out_link)] if out_link else ["--no-link"]
    if check:
        args.append("--rebuild")
    proc = run_tool(args, f"nix build of {attr}", env=nix_env(), check=False)
    if proc.returncode != 0:
        m = re.search(r"unable to download '([^']+)'|cannot download \S+ from '([^']+)'|error: .*'(file:///[^']+)'",
                      proc.stderr)
        if m:
            url = next(g for g in m.groups() if g)
            name = url.rsplit("/", 1)[-1]
            if data is not None:
                name = next((it["name"] for it in flat_items(data) if it["url"] == url), name)
            raise EnvgenError(f"artifact {name} is not seeded into the Nix store and the build is offline",
                              hint="run `envgen nix seed SPEC`")
        if "may not be deterministic" in proc.stderr or "differs from" in proc.stderr:
            raise EnvgenError(f"nix build --rebuild of {attr}: the output differs: {_tail(proc.stderr)}")
        raise EnvgenError(f"nix build of {attr} failed: {_tail(proc.stderr, 4)}")
    if out_link:
        return os.readlink(out_link)
    out = _nix(["nix", "eval", "--raw", "-f", str(flake_dir / "nix" / "default.nix"), f"{attr}.outPath"],
               "nix eval")
    return out.stdout.strip()


class NixBuilder:
    """The same tree, built by Nix in its sandbox from a nixpkgs-free flake (docs/nix.md)."""

    name = NAME
    version = VERSION

    def cached(self, store: Store, snapshot_id: str) -> BuildResult | None:
        """The Nix-built tree of *snapshot_id* if its out-link and digest are recorded."""
        inputs = BuildInputs.load(store, snapshot_id)
        link = store.paths.nix_roots / f"{inputs.lock.name}-{snapshot_id[:16]}-env"
        if not link.is_symlink() or not Path(os.readlink(link)).is_dir():
            return None
        meta = _read_tree_meta(store, os.readlink(link))
        if meta is None:
            return None
        return BuildResult(NAME, meta["key"], meta["tree-digest"], Path(os.readlink(link)), snapshot_id, True, True,
                           0.0, meta["files"], meta["bytes"])

    def build(self, store: Store, snapshot_id: str, *, force: bool = False, note: Note = quiet) -> BuildResult:
        """Generate the flake's data in the store, seed, ``nix build`` NAME-env; digest the output."""
        t0 = time.perf_counter()
        require_nix()
        inputs = BuildInputs.load(store, snapshot_id)
        lock = inputs.lock
        note("writing the flake's data for the snapshot")
        json_path, data, generated = generate(inputs, store.paths.nix_flakes / snapshot_id)
        flake_dir = json_path.parents[2]
        seed(store, data, generated, lock, note)
        store.paths.nix_roots.mkdir(parents=True, exist_ok=True)
        note(f"nix build {lock.name}-env (sandboxed, offline)")
        link = store.paths.nix_roots / f"{lock.name}-{snapshot_id[:16]}-env"
        out = nix_build(flake_dir, f"{lock.name}-env", link, data=data)
        if force:
            note(f"rebuilding {lock.name}-env to check it (nix build --rebuild)")
            nix_build(flake_dir, f"{lock.name}-env", check=True, data=data)
        key = build_key(snapshot_id, inputs.platform, NAME, VERSION)
        meta = None if force else _read_tree_meta(store, out)
        cached = meta is not None
        if meta is None:
            note("hashing the tree")
            meta = _write_tree_meta(store, out, key, snapshot_id)
        return BuildResult(NAME, key, meta["tree-digest"], Path(out), snapshot_id, cached, True,
                           time.perf_counter() - t0, meta["files"], meta["bytes"])


def _tree_meta_path(store: Store, out: str) -> Path:
    return store.paths.nix_trees / f"{Path(out).name}.json"


def _read_tree_meta(store: Store, out: str) -> dict | None:
    try:
        doc = json.loads(_tree_meta_path(store, out).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format-version", 99) > formats.current("envgen-nix-tree"):
        return None
    if doc.get("builder-version") != VERSION:  # hashed under another digest definition: hash again
        return None
    return doc


def _write_tree_meta(store: Store, out: str, key: str, snapshot_id: str) -> dict:
    digest, lines = tree_digest(Path(out))
    size = sum(os.lstat(os.path.join(dp, f)).st_size for dp, _, fs in os.walk(out) for f in fs)
    meta = {**formats.header("envgen-nix-tree"), "builder": NAME, "builder-version": VERSION, "key": key,
            "snapshot": snapshot_id, "store-path": out, "tree-digest": digest, "files": len(lines), "bytes": size}
    path = _tree_meta_path(store, out)
    atomic_write(path.with_suffix(".listing.txt"), "\n".join(lines) + "\n")
    atomic_write(path, json.dumps(meta, sort_keys=True, indent=2) + "\n")
    return meta


BUILDER = NixBuilder()
