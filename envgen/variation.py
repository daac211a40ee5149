"""Determinism under variation: build and export one snapshot again under a changed host, and compare.

The harness behind ``tests/test_variation.py`` and ``bench/variation.py``
(docs/reproducibility.md, "Variations tested").  For each variation it makes a
scratch store holding the snapshot's objects (hard-linked from a base store;
copied where another user must own them), a copy of the project, and runs the
real CLI (``python -m envgen``) in a subprocess under the variation:

==============  ===============================================================
``baseline``    nothing changed (umask 022, the caller's environment)
``umask-077``   ``umask 077``
``umask-002``   ``umask 002``
``tz-locale``   ``TZ=Pacific/Chatham``, ``LC_ALL=POSIX``, ``LANG=de_DE.UTF-8``, ``LANGUAGE=de``
``one-cpu``     ``taskset -c 0`` (one core; bytecode is compiled in fixed chunks anyway)
``store-path``  the store and the project under a path with spaces and non-ASCII characters
``hostname``    ``unshare --uts`` with another hostname (needs root)
``user``        another uid/gid (``setpriv``, 65534) with its own store (needs root and bwrap for that user)
``disorderfs``  project and store seen through ``disorderfs --reverse-dirents=yes`` (needs FUSE)
==============  ===============================================================

Compared with the baseline: the snapshot id, the tree digest and the full
listing (path, exact mode, size, sha256, link target) per builder; from the
embedded tree the OCI index digest and every layer's diff_id, the SIF and sqsh
sha256, and the bundle's sha256 (``envgen archive``).  Every difference names
the differing files and how they differ (:mod:`envgen.challenge`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .builders.tree import compare_listings, describe_difference, listing
from .fsutil import file_sha256, remove_tree

OTHER_UID = 65534
IGNORE = shutil.ignore_patterns(".venv", ".venv-*", "__pycache__", "*.pyc", ".pytest_cache", ".git", "nix")
EXPORTS = ("oci", "sif", "sqsh")


@dataclass(frozen=True)
class Variation:
    name: str
    what: str
    umask: int = 0o022
    env: dict[str, str] = field(default_factory=dict)
    prefix: tuple[str, ...] = ()
    store_dir: str = "store"
    project_dir: str = "proj"
    user: int | None = None
    reverse_dirents: bool = False
    nix: bool = True  # the Nix builder can run under it

    def unavailable(self) -> str | None:
        """Why this variation cannot run here, or None."""
        root = os.geteuid() == 0
        if self.name == "hostname" and not root:
            return "changing the hostname needs root (unshare --uts)"
        if self.name == "one-cpu" and shutil.which("taskset") is None:
            return "taskset is not installed (util-linux)"
        if self.user is not None:
            if not root:
                return "running as another user needs root (setpriv)"
            if shutil.which("setpriv") is None:
                return "setpriv is not installed (util-linux)"
            probe = subprocess.run(["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--clear-groups",
                                    "bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"],
                                   capture_output=True, text=True)
            if probe.returncode != 0:
                return f"bwrap does not work for uid {self.user} here: {probe.stderr.strip()[-200:]}"
            same = subprocess.run(["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--clear-groups",
                                   sys.executable, "-c", "import sys; print(sys.version)"],
                                  capture_output=True, text=True)
            if same.stdout.strip() != sys.version.strip():
                return (f"this interpreter ({sys.executable}, Python {sys.version.split()[0]}) is not usable by "
                        f"uid {self.user} here: it resolves to Python {same.stdout.split(' ')[0] or '?'} for that "
                        "user (the venv's base interpreter is in a directory only root may read), so the "
                        "variation would change the interpreter too")
        if self.reverse_dirents:
            return fuse_unavailable()
        return None


def fuse_unavailable() -> str | None:
    if shutil.which("disorderfs") is None:
        return "disorderfs is not installed (apt-get install disorderfs fuse3)"
    if not os.path.exists("/dev/fuse") or not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "FUSE is unusable here: /dev/fuse is missing or not accessible"
    with tempfile.TemporaryDirectory(prefix="envgen-fuse-probe-") as d:
        src, mnt = Path(d, "src"), Path(d, "mnt")
        src.mkdir()
        mnt.mkdir()
        r = subprocess.run(["disorderfs", "-q", "--reverse-dirents=yes", str(src), str(mnt)],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            return f"FUSE is unusable here: disorderfs could not mount ({r.stderr.strip()[-200:]})"
        _unmount(mnt)
    return None


def _unmount(mnt: Path) -> None:
    for tool in ("fusermount3", "fusermount"):
        if shutil.which(tool):
            subprocess.run([tool, "-u", str(mnt)], capture_output=True)
            return
    subprocess.run(["umount", str(mnt)], capture_output=True)


VARIATIONS: dict[str, Variation] = {v.name: v for v in (
    Variation("baseline", "nothing changed (umask 022)"),
    Variation("umask-077", "umask 077", umask=0o077),
    Variation("umask-002", "umask 002", umask=0o002),
    Variation("tz-locale", "TZ=Pacific/Chatham, LC_ALL=POSIX, LANG=de_DE.UTF-8, LANGUAGE=de",
              env={"TZ": "Pacific/Chatham", "LC_ALL": "POSIX", "LANG": "de_DE.UTF-8", "LANGUAGE": "de"}),
    Variation("one-cpu", "taskset -c 0 (one core)", prefix=("taskset", "-c", "0")),
    Variation("store-path", "store and project under 'wörk dir ñ/…' (spaces, non-ASCII)",
              store_dir="wörk dir ñ/störe with spaces", project_dir="wörk dir ñ/pröj ect"),
    Variation("hostname", "unshare --uts, hostname envgen-variation-host",
              prefix=("unshare", "--uts", "sh", "-c", 'hostname envgen-variation-host && exec "$@"', "sh")),
    Variation("user", f"another user: uid/gid {OTHER_UID}, its own store (setpriv)", user=OTHER_UID, nix=False),
    Variation("disorderfs", "project and store through disorderfs --reverse-dirents=yes", reverse_dirents=True),
)}


@dataclass
class Outcome:
    """What one variation produced."""

    variation: str
    skipped: str | None = None
    error: str | None = None
    snapshot_id: str = ""
    trees: dict[str, dict] = field(default_factory=dict)  # builder -> {digest, path, lines}
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> sha256 (oci index, layers, sif, sqsh, bundle)
    paths: dict[str, Path] = field(default_factory=dict)  # artifact name -> where it was written
    seconds: float = 0.0
    differences: list[dict] = field(default_factory=list)  # vs the baseline: {"what", "detail", "files"}

    @property
    def identical(self) -> bool:
        return not self.skipped and not self.error and not self.differences

    def summary(self) -> dict:
        return {"variation": self.variation, "what": VARIATIONS[self.variation].what, "skipped": self.skipped,
                "error": self.error, "identical": self.identical, "seconds": round(self.seconds, 1),
                "snapshot_id": self.snapshot_id,
                "tree_digests": {b: t["digest"] for b, t in self.trees.items()},
                "artifacts": self.artifacts, "differences": self.differences}


class Harness:
    """Build (and export) one snapshot under each variation, comparing each with the baseline."""

    def __init__(self, project: Path, spec_rel: str, base_store: Path, work: Path, *,
                 builders: tuple[str, ...] = ("embedded",), exports: tuple[str, ...] = EXPORTS,
                 bundle: bool = True, nix_variations: tuple[str, ...] | None = None, keep: bool = False,
                 note: Callable[[str], None] = lambda m: None):
        self.project = Path(project)
        self.spec_rel = spec_rel
        self.base_store = Path(base_store)
        self.work = Path(work)
        self.builders = builders
        self.exports = exports
        self.bundle = bundle
        self.nix_variations = nix_variations
        self.keep = keep
        self.note = note
        self.baseline: Outcome | None = None

    # ------------------------------------------------------------------ running one variation

    def run(self, names: list[str]) -> list[Outcome]:
        names = ["baseline"] + [n for n in names if n != "baseline"]
        out = []
        for n in names:
            o = self.run_one(VARIATIONS[n])
            if n == "baseline":
                self.baseline = o
                if o.error:
                    raise RuntimeError(f"the baseline failed: {o.error}")
            else:
                self.compare(o)
                if not self.keep:
                    self._cleanup(n)
            out.append(o)
        return out

    def _nix_runs(self, v: Variation) -> bool:
        return v.nix and (self.nix_variations is None or v.name in self.nix_variations or v.name == "baseline")

    def _area(self, v: Variation) -> Path:
        if v.user is None:
            return self.work / v.name
        # another user must reach it: a fresh 0755 directory under the system temp dir
        d = Path(tempfile.mkdtemp(prefix=f"envgen-variation-{v.name}-"))
        os.chmod(d, 0o755)
        (self.work / f"{v.name}.where").write_text(str(d))
        return d

    def _cleanup(self, name: str) -> None:
        where = self.work / f"{name}.where"
        if where.is_file():
            remove_tree(Path(where.read_text()))
        remove_tree(self.work / name)

    def run_one(self, v: Variation) -> Outcome:
        o = Outcome(v.name)
        why = v.unavailable()
        if why:
            o.skipped = why
            self.note(f"{v.name}: skipped: {why}")
            return o
        self.note(f"{v.name}: {v.what}")
        t0 = time.perf_counter()
        area = self._area(v)
        mounts: list[Path] = []
        try:
            proj, store = self._prepare(v, area, mounts)
            spec = proj / self.spec_rel
            env = dict(os.environ, **v.env)
            if v.user is not None:
                home = area / "home"
                home.mkdir()
                os.chown(home, v.user, v.user)
                env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), XDG_DATA_HOME=str(home / ".local"))
            env.pop("ENVGEN_STORE", None)

            def envgen(*args: str) -> dict:
                argv = [*v.prefix, sys.executable, "-m", "envgen", *args, "--store", str(store), "--json"]
                if v.user is not None:
                    argv = ["setpriv", f"--reuid={v.user}", f"--regid={v.user}", "--clear-groups", *argv]
                r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800,
                                   preexec_fn=lambda: os.umask(v.umask))
                if r.returncode != 0:
                    raise _Failed(f"envgen {args[0]} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
                return json.loads(r.stdout)

            outdir = area / "out"
            outdir.mkdir(parents=True, exist_ok=True)
            if v.user is not None:
                os.chown(outdir, v.user, v.user)
            for b in self.builders:
                if b == "nix" and not self._nix_runs(v):
                    continue
                args = ["build", str(spec)] + (["--builder", "nix", "--force"] if b == "nix" else [])
                res = envgen(*args)
                o.snapshot_id = res["snapshot_id"]
                o.trees[b] = {"digest": res["tree_digest"], "path": res["path"],
                              "lines": listing(Path(res["path"]))}
            for fmt in self.exports:
                dest = outdir / {"oci": "image.oci", "sif": "image.sif", "sqsh": "image.sqsh"}[fmt]
                res = envgen("export", str(spec), "--format", fmt, "-o", str(dest))
                o.paths[fmt] = dest
                if fmt == "oci":
                    o.artifacts["oci index"] = file_sha256(dest / "index.json")
                    o.artifacts["oci manifest"] = res["manifest_digest"].split(":", 1)[1]
                    for layer in res["layers"]:
                        o.artifacts[f"oci layer {layer['name']} diff_id"] = layer["diff_id"].split(":", 1)[1]
                    for ref in res.get("referrers", []):  # the SBOM and the provenance (OCI 1.1 referrers)
                        o.artifacts[f"oci referrer {ref['artifactType']}"] = ref["digest"].split(":", 1)[1]
                else:
                    o.artifacts[fmt] = file_sha256(dest)
            if self.bundle:
                dest = outdir / "bundle.tar.zst"
                envgen("archive", str(spec), "-o", str(dest))
                o.paths["bundle"] = dest
                o.artifacts["bundle"] = file_sha256(dest)
        except _Failed as exc:
            o.error = str(exc)
            self.note(f"{v.name}: FAILED: {exc}")
        finally:
            for m in reversed(mounts):
                _unmount(m)
            o.seconds = time.perf_counter() - t0
        return o

    def _prepare(self, v: Variation, area: Path, mounts: list[Path]) -> tuple[Path, Path]:
        """The project copy and the scratch store of variation *v* (mounted through disorderfs if asked)."""
        from .challenge import scratch_store
        from .snapshot import Store

        sid = self._snapshot_id()
        proj = area / v.project_dir
        store = area / v.store_dir
        if v.reverse_dirents:
            real_proj, real_store = area / "proj.real", area / "store.real"
        else:
            real_proj, real_store = proj, store
        real_proj.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.project, real_proj, ignore=IGNORE, symlinks=True)
        real_store.parent.mkdir(parents=True, exist_ok=True)
        scratch_store(Store(self.base_store), sid, real_store, copy=v.user is not None)
        if v.user is not None:
            for d in (real_proj, real_store):
                for dirpath, dirnames, filenames in os.walk(d):
                    os.chown(dirpath, v.user, v.user)
                    for n in dirnames + filenames:
                        os.chown(os.path.join(dirpath, n), v.user, v.user, follow_symlinks=False)
        if v.reverse_dirents:
            for real, mnt in ((real_proj, proj), (real_store, store)):
                mnt.mkdir(parents=True, exist_ok=True)
                subprocess.run(["disorderfs", "-q", "--reverse-dirents=yes", str(real), str(mnt)], check=True,
                               capture_output=True, timeout=60)
                mounts.append(mnt)
        return proj, store

    def _snapshot_id(self) -> str:
        if not hasattr(self, "_sid"):
            from .builders import snapshot_offline
            from .lock import load_lock_for
            from .snapshot import Store

            spec, lock = load_lock_for(self.project / self.spec_rel)
            self._sid = snapshot_offline(Store(self.base_store), lock, spec.path if spec else None)
        return self._sid

    # ------------------------------------------------------------------ comparing with the baseline

    def compare(self, o: Outcome) -> None:
        base = self.baseline
        assert base is not None
        if o.skipped or o.error:
            return
        if o.snapshot_id != base.snapshot_id:
            o.differences.append({"what": "snapshot id", "detail": f"{base.snapshot_id[:16]}… / {o.snapshot_id[:16]}…",
                                  "files": []})
        for b, t in o.trees.items():
            bt = base.trees.get(b)
            if bt is None:
                continue
            if t["lines"] != bt["lines"] or t["digest"] != bt["digest"]:
                diffs = compare_listings(bt["lines"], t["lines"])
                o.differences.append({"what": f"{b} tree", "detail": f"digest {bt['digest'][:16]}… / "
                                      f"{t['digest'][:16]}…", "files": [describe_difference(d) for d in diffs]})
        for name, sha in sorted(o.artifacts.items()):
            if base.artifacts.get(name) != sha:
                o.differences.append({"what": name, "detail": f"{(base.artifacts.get(name) or 'absent')[:16]}… / "
                                      f"{sha[:16]}…", "files": []})
        for art in sorted({d["what"].split(" ")[0] for d in o.differences} & {"oci", "sif", "sqsh", "bundle"}):
            files = self._explain(art, base.paths.get(art), o.paths.get(art))
            o.differences.append({"what": f"{art} contents", "detail": f"{len(files)} differing entries",
                                  "files": files})

    def _explain(self, art: str, a: Path | None, b: Path | None) -> list[str]:
        """Name the entries that differ between two exports of the same kind."""
        if a is None or b is None:
            return []
        if art == "bundle":
            diffs = compare_listings(_bundle_lines(a), _bundle_lines(b))
            return [describe_difference(d) for d in diffs]
        from .challenge import challenge_paths

        with tempfile.TemporaryDirectory(prefix="envgen-variation-explain-") as d:
            _, _, diffs = challenge_paths(a, b, Path(d))
        return [describe_difference(d) for d in diffs]


class _Failed(Exception):
    pass


def _bundle_lines(path: Path) -> list[str]:
    """A bundle's members as listing lines (mode, path, sha256), in archive order."""
    import zstandard

    lines = []
    with open(path, "rb") as fh:
        stream = zstandard.ZstdDecompressor().stream_reader(fh) if path.name.endswith(".zst") else fh
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for i, m in enumerate(tf):
                f = tf.extractfile(m)
                data = f.read() if f else b""
                lines.append(f"f {m.mode:04o} {m.name} {hashlib.sha256(data).hexdigest()}")
                lines.append(f"? 0000 {m.name}#meta #{i} {m.uid}:{m.gid}:{m.uname}:{m.gname} mtime {m.mtime}")
    return lines


def table(outcomes: list[Outcome]) -> str:
    """A plain-text table: one row per variation, then every difference."""
    rows = [f"{'variation':<12} {'result':<10} {'seconds':>7}  what"]
    for o in outcomes:
        result = "skipped" if o.skipped else "FAILED" if o.error else "baseline" if o.variation == "baseline" \
            else "identical" if o.identical else "DIFFERS"
        rows.append(f"{o.variation:<12} {result:<10} {o.seconds:7.1f}  {VARIATIONS[o.variation].what}")
    for o in outcomes:
        if o.skipped:
            rows.append(f"\n{o.variation}: skipped: {o.skipped}")
        if o.error:
            rows.append(f"\n{o.variation}: {o.error}")
        for d in o.differences:
            rows.append(f"\n{o.variation}: {d['what']} differs: {d['detail']}")
            rows += [f"    {f}" for f in d["files"][:50]]
            if len(d["files"]) > 50:
                rows.append(f"    … and {len(d['files']) - 50} more")
    return "\n".join(rows)
