"""Recorded runs as they travel in a bundle, and their replay from it.

In a bundle a run is its provenance record without host paths (a bind keeps
its destination inside the env and its mode, not its source), and its input
and output files are store objects.  Replaying it needs only the bundle: the
inputs are laid out afresh from the objects and bound where they were.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path

from ..errors import EnvgenError
from ..fsutil import file_sha256
from ..snapshot.store import Store
from .records import Records

# The record fields a bundle keeps (all but host paths).
KEEP = ("id", "label", "reason", "command", "env", "workdir", "network", "inputs", "outputs", "exit_status",
        "nondeterministic", "tree_digest", "snapshot_id", "build_key", "builder", "runtime", "env_name", "started",
        "duration", "host", "code", "tags")


def runs_for_bundle(store: Store, sid: str, only: list[str]) -> tuple[dict, list[dict]]:
    records = Records(store.paths.records)
    try:
        if only:
            recs = [records.get(r) for r in only]
            for r in recs:
                if r.snapshot_id != sid:
                    raise EnvgenError(f"run {r.id} ran in snapshot {r.snapshot_id}, not {sid}")
        else:
            recs = [r for r in records.list(limit=None) if r.snapshot_id == sid and r.rerun_of is None]
    finally:
        records.close()
    recs = [r for r in recs if r.exit_status is not None]
    if not recs:
        raise EnvgenError(f"no finished recorded runs of snapshot {sid[:16]}… in this store",
                          hint="run the workload with `envgen run SPEC …` first, or drop --with-runs")
    digests = {(r.builder, r.tree_digest) for r in recs}
    if len(digests) != 1:
        raise EnvgenError("the selected runs used different environments; archive them separately (--run ID)")
    builder, digest = digests.pop()
    out = []
    for r in recs:
        # inputs were only hashed when the run was recorded: put them in the store now, unchanged
        for b in r.binds:
            if b["mode"] != "ro":
                continue
            src = Path(b["src"])
            for path, info in r.inputs.items():
                if path == b["dst"] or path.startswith(b["dst"].rstrip("/") + "/"):
                    host = src if src.is_file() else src / posixpath.relpath(path, b["dst"])
                    if store.has(info["sha256"]):
                        continue
                    if not host.is_file() or file_sha256(host) != info["sha256"]:
                        raise EnvgenError(f"run {r.id}: input {path} ({host}) is gone or changed since the run",
                                          hint="archive only runs whose inputs are still as they were")
                    store.add_file(host, info["sha256"], label=path)
        d = {k: getattr(r, k) for k in KEEP}
        d["binds"] = [{"dst": b["dst"], "mode": b["mode"]} for b in r.binds]
        out.append(d)
    env = {"builder": builder or "embedded", "tree-digest": digest, "snapshot": sid}
    return env, out


def lay_out_inputs(store: Store, run: dict, base: Path) -> list[tuple[Path, str, bool]]:
    """Materialise a bundled run's binds under *base*: read-only inputs from objects, fresh dirs for outputs.

    Returns (host path, destination, writable) triples in the record's order.
    """
    triples = []
    for i, b in enumerate(run["binds"]):
        dst = b["dst"]
        host = base / f"bind{i}"
        if b["mode"] == "ro":
            files = {p: info for p, info in run["inputs"].items()
                     if p == dst or p.startswith(dst.rstrip("/") + "/")}
            if list(files) == [dst]:  # a single bound file
                host.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(store.path_of(files[dst]["sha256"]), host)
            else:
                host.mkdir(parents=True, exist_ok=True)
                for p, info in files.items():
                    target = host / posixpath.relpath(p, dst)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(store.path_of(info["sha256"]), target)
                    except OSError:
                        shutil.copyfile(store.path_of(info["sha256"]), target)
            triples.append((host, dst, False))
        else:
            host.mkdir(parents=True, exist_ok=True)
            triples.append((host, dst, True))
    return triples
