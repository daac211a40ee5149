"""``envgen rerun``: same command, same env, same inputs; compare the outputs."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import EnvgenError
from ..runtimes import Env, Runtime, get_runtime, prepare
from ..sandbox import Bind
from ..snapshot.store import Store
from .compare import compare_outputs
from .execute import RunRequest, hash_tree, run_recorded
from .records import Records, status


def rerun(store: Store, run_id: str, out: str | None, ui=None) -> dict:
    records = Records(store.paths.records)
    rec = records.get(run_id)
    records.close()
    if rec.exit_status is None:
        raise EnvgenError(f"run {rec.id} has no result to compare with ({status(rec)}: no exit status, no outputs)",
                          hint="`envgen runs show ID` says what its record holds")
    runtime, env = _env_of(store, rec, ui)

    base = Path(out) if out else Path(tempfile.mkdtemp(prefix=f"envgen-rerun-{rec.id}-"))
    base.mkdir(parents=True, exist_ok=True)
    binds: list[Bind] = []
    for i, b in enumerate(rec.binds):
        src = Path(b["src"])
        if b["mode"] == "ro":
            if not src.exists():
                raise EnvgenError(f"input {src} (bound at {b['dst']}) no longer exists")
            now = hash_tree(src, b["dst"])
            for path, info in rec.inputs.items():
                if path == b["dst"] or path.startswith(b["dst"].rstrip("/") + "/"):
                    if path not in now:
                        raise EnvgenError(f"input {path} is missing now; the rerun would not see the same inputs")
                    if now[path]["sha256"] != info["sha256"]:
                        raise EnvgenError(f"input {path} changed since run {rec.id} (sha256 {info['sha256'][:16]}… "
                                          f"→ {now[path]['sha256'][:16]}…)")
            binds.append(Bind(src, b["dst"], False))
        else:
            fresh = base / f"bind{i}"
            fresh.mkdir(exist_ok=True)
            binds.append(Bind(fresh, b["dst"], True))
    new = run_recorded(store, runtime, env, RunRequest(
        command=rec.command, binds=binds, network=rec.network, label=rec.label, reason=f"rerun of {rec.id}",
        spec=rec.spec, env_vars=dict(rec.env), workdir=rec.workdir, nondeterministic=rec.nondeterministic,
        rerun_of=rec.id, stdout_to_stderr=True))
    return {"original": rec.id, "rerun": new.id, "out": str(base), "comparison": compare_runs(store, rec, new)}


def compare_runs(store: Store, rec, new) -> dict:
    """A rerun's (or any later run's) outputs and exit status against a recorded run's: compare_outputs's
    verdict, files and counts (and ``exit_status`` when those differ).  The files are read from the store."""
    def read(info_map):
        return lambda path: store.path_of(info_map[path]["sha256"]).read_bytes()

    comparison = compare_outputs(rec.outputs, new.outputs, rec.nondeterministic, read(rec.outputs), read(new.outputs))
    if new.exit_status != rec.exit_status:
        comparison["verdict"] = "differing"
        comparison["exit_status"] = {"original": rec.exit_status, "rerun": new.exit_status}
    return comparison


def _env_of(store: Store, rec, ui) -> tuple[Runtime, Env]:
    """The recorded run's env: the tree still in the store (bwrap, nix), else rebuilt from its spec."""
    from ..builders import BUILDERS, get_builder

    if rec.runtime in ("bwrap", "nix") and rec.snapshot_id and rec.builder in BUILDERS:
        try:
            hit = get_builder(rec.builder).cached(store, rec.snapshot_id)
        except EnvgenError:
            hit = None  # the snapshot or its objects are gone: rebuild from the spec below
        if hit is not None:
            if hit.digest != rec.tree_digest:
                raise EnvgenError(f"the stored env {hit.key} has digest {hit.digest}, not the recorded one")
            return get_runtime(rec.runtime), Env(
                rootfs=hit.rootfs, runtime=rec.runtime, builder=hit.builder, snapshot_id=hit.snapshot_id,
                tree_digest=hit.digest, build_key=hit.key, env_name=rec.env_name or "")
    if rec.spec and Path(rec.spec).is_file():
        runtime, env, _ = prepare(store, rec.spec, rec.runtime or "bwrap", ui, _variant_of(rec))
        if env.tree_digest != rec.tree_digest:
            raise EnvgenError(f"the env of {rec.spec} now has tree digest {env.tree_digest[:16]}…, "
                              f"not the recorded {rec.tree_digest[:16]}…",
                              hint="the spec or lock changed since the run")
        return runtime, env
    raise EnvgenError(f"the env of run {rec.id} (build {rec.build_key}) is not in this store",
                      hint="rebuild it with `envgen build SPEC`")


def _variant_of(rec) -> str | None:
    """The spec variant a recorded run used: its env is named ``<spec name>-<variant>`` (None: the default)."""
    from ..spec import load_spec

    try:
        spec = load_spec(rec.spec)
    except EnvgenError:
        return None  # a lock or a SIF: one env only
    if not rec.env_name:
        return None
    return next((v for v in spec.variants if rec.env_name == f"{spec.name}-{v}"), None)

