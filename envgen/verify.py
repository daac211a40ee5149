"""``envgen verify BUNDLE``: an artifact-evaluation verdict from a bundle alone.

Starting from nothing but the bundle and an empty store:

1. **Available** — restore it: every member present, every sha256 holds, the
   snapshot id matches its manifest.
2. **Functional** — rebuild the env offline and compare its tree digest with
   the one the bundle records; run each recorded run (or, with none, start the
   env's Python and find the spec's command) and check it exits as recorded.
3. **Reproduced** — the reruns' outputs match the recorded ones, file by file,
   under the declared nondeterministic files and columns.

Each level needs the ones before it.  The result lists every check with the
evidence behind it, and how long each stage took.
"""

from __future__ import annotations

import html
import json
import tempfile
import time
from pathlib import Path

from .archive import restore_bundle
from .errors import EnvgenError, NewerFormatError, NotABundle
from .fsutil import remove_tree
from .snapshot.store import Store

LEVELS = ("available", "functional", "reproduced")


def network_cut() -> bool:
    """True when this process sees no network interface but loopback."""
    import socket

    try:
        return all(name == "lo" for _, name in socket.if_nameindex())
    except OSError:
        return False


class _Checks:
    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, level: str, name: str, ok: bool, detail: str) -> bool:
        self.items.append({"level": level, "check": name, "ok": bool(ok), "detail": detail})
        return ok

    def ok(self, level: str) -> bool:
        mine = [c for c in self.items if c["level"] == level]
        return bool(mine) and all(c["ok"] for c in mine)


def verify_bundle(bundle: str | Path, *, builder: str = "embedded", keep: str | None = None,
                  note=lambda m: None, keys: list | None = None) -> dict:
    """Restore, rebuild and rerun *bundle*; with *keys*, first check its signed attestations (SignatureError)."""
    bundle = Path(bundle)
    if not bundle.is_file():
        raise EnvgenError(f"{bundle}: no such file")
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="envgen-verify-"))
    work.mkdir(parents=True, exist_ok=True)
    store = Store(work / "store")
    checks = _Checks()
    stages: dict[str, float] = {}
    result = {"bundle": str(bundle), "work": str(work), "network_cut": network_cut(), "builder": builder}
    try:
        # ---------------------------------------------------------------- available
        t = time.perf_counter()
        note("restoring and checking every hash")
        try:
            res = restore_bundle(store, bundle, work / "tree")
        except EnvgenError as exc:
            if isinstance(exc, (NotABundle, NewerFormatError)):
                raise
            checks.add("available", "bundle complete and intact", False, exc.message)
            return _finish(result, checks, stages, None)
        stages["restore"] = round(time.perf_counter() - t, 3)
        if keys:
            from .signing import check_members

            result["signatures"] = [check_members(str(bundle), res["attestations"], k) for k in keys]
        runs = res["runs"]
        env_doc = res["env"] or {}
        checks.add("available", "bundle complete and intact", True,
                   f"{res['objects']} environment objects, every sha256 holds; snapshot {res['id']}")
        result.update({"snapshot_id": res["id"], "name": res["name"], "runs": len(runs)})
        if res["spec"] is None:
            checks.add("available", "spec and lock present", False, "the bundle has no spec")
            return _finish(result, checks, stages, None)

        # ---------------------------------------------------------------- functional
        from .lock import load_lock_for

        t = time.perf_counter()
        note("rebuilding the environment offline")
        variant = None
        if res.get("lock"):  # the bundle's lock says which env of the spec it is (a [variants.NAME] or not)
            from .lock import pylock

            variant = pylock.load(res["lock"]).variant
        spec, lock = load_lock_for(res["spec"], variant=variant)
        if spec is None:
            raise EnvgenError(f"{bundle}: the bundle's spec member is a lock, not a spec")
        from .builders import get_builder

        built = get_builder(builder).build(store, res["id"], note=note)
        stages["build"] = round(time.perf_counter() - t, 3)
        want = env_doc.get("tree-digest")
        if want and env_doc.get("builder", "embedded") == built.builder:
            checks.add("functional", "env rebuilds to the recorded tree digest", built.digest == want,
                       f"rebuilt {built.digest}" + ("" if built.digest == want else f", the bundle records {want}"))
        else:
            checks.add("functional", "env rebuilds", True, f"tree digest {built.digest} (the bundle records none "
                       f"for the {built.builder} builder to compare with)")
        result["tree_digest"] = built.digest

        from .run.execute import find_command
        from .runtimes import Env, get_runtime

        runtime = get_runtime("bwrap" if built.builder == "embedded" else built.builder)
        env = Env(rootfs=built.rootfs, runtime=runtime.name, builder=built.builder, snapshot_id=built.snapshot_id,
                  tree_digest=built.digest, build_key=built.key, env_name=lock.name)
        t = time.perf_counter()
        damaged = {d["path"].split("/")[-1]: d for d in res["damaged"]}
        reruns = []
        if not runs:
            try:
                find_command(built.rootfs, spec.command[0])
                checks.add("functional", "the spec's command is in the env", True, " ".join(spec.command))
            except EnvgenError as exc:
                checks.add("functional", "the spec's command is in the env", False, exc.message)
        for run in runs:
            reruns.append(_replay(store, runtime, env, run, damaged, checks, work, note))
        stages["reruns"] = round(time.perf_counter() - t, 3)
        result["reruns"] = reruns
        if not runs:
            checks.add("reproduced", "recorded results reproduce", False,
                       "the bundle carries no recorded runs (archive with --with-runs)")
        return _finish(result, checks, stages, runs)
    finally:
        if not keep:
            remove_tree(work)


def _replay(store, runtime, env, run, damaged, checks, work, note) -> dict:
    from .run.bundled import lay_out_inputs
    from .run.compare import compare_outputs
    from .run.execute import RunRequest, run_recorded
    from .sandbox import Bind

    label = f"run {run['id']}" + (f" ({run['label']})" if run.get("label") else "")
    bad_inputs = [p for p, i in run["inputs"].items() if i["sha256"] in damaged]
    if bad_inputs:
        checks.add("functional", f"{label} runs", False, f"its input {bad_inputs[0]} is damaged in the bundle")
        return {"run": run["id"], "skipped": "damaged input"}
    note(f"rerunning {label}")
    base = work / "runs" / run["id"]
    binds = [Bind(h, d, w) for h, d, w in lay_out_inputs(store, run, base)]
    new = run_recorded(store, runtime, env, RunRequest(
        command=run["command"], binds=binds, network=False, label=run.get("label"),
        reason=f"envgen verify: rerun of {run['id']}", env_vars=run.get("env") or {}, workdir=run.get("workdir"),
        nondeterministic=run.get("nondeterministic") or {}, rerun_of=run["id"], stdout_to_stderr=True, cwd=base))
    checks.add("functional", f"{label} runs", new.exit_status == run["exit_status"],
               f"exit {new.exit_status}" + ("" if new.exit_status == run["exit_status"]
                                            else f", recorded {run['exit_status']}") + f" ({new.duration:.1f} s)")

    def read_old(path):
        return store.path_of(run["outputs"][path]["sha256"]).read_bytes()

    def read_new(path):
        return store.path_of(new.outputs[path]["sha256"]).read_bytes()

    damaged_out = {p for p, i in run["outputs"].items() if i["sha256"] in damaged}
    # a damaged recorded output cannot back the claim, whatever the rerun gives
    recorded = {p: i for p, i in run["outputs"].items() if p not in damaged_out}
    comparison = compare_outputs(recorded, {p: i for p, i in new.outputs.items() if p not in damaged_out},
                                 run.get("nondeterministic") or {}, read_old, read_new)
    failing = [f for f in comparison["files"] if f["status"] in ("differing", "missing")]
    for p in sorted(damaged_out):
        checks.add("reproduced", f"{label}: {p}", False,
                   f"the recorded output {p} is damaged in the bundle "
                   f"(its bytes no longer hash to {run['outputs'][p]['sha256'][:16]}…)")
    for f in failing:
        cols = f.get("csv", {}).get("columns")
        checks.add("reproduced", f"{label}: {f['path']}", False,
                   f"{f['status']}" + (f" (columns: {', '.join(cols)})" if cols else ""))
    same = [f for f in comparison["files"] if f["status"] in ("identical", "identical-except-nondeterministic")]
    ignored = [f for f in comparison["files"] if f["status"].startswith("nondeterministic")]
    if not failing and not damaged_out:
        checks.add("reproduced", f"{label} outputs match", True,
                   f"{len(same)} files identical" + (f", {len(ignored)} declared nondeterministic" if ignored else ""))
    return {"run": run["id"], "rerun": new.id, "comparison": comparison}


def rebuild_attestation(result: dict, bundle_sha256: str) -> dict:
    """The in-toto Statement of this verification: what was rebuilt from which bundle, the digests, the verdict."""
    from . import attest

    subjects = []
    if result.get("snapshot_id"):
        subjects.append(attest.subject("snapshot.json", result["snapshot_id"], "application/json"))
    if result.get("tree_digest") and result.get("name"):
        subjects.append(attest.tree_subject(result["name"], result["tree_digest"]))
    if not subjects:
        subjects.append(attest.subject(Path(result["bundle"]).name, bundle_sha256))
    rebuilt = {"bundle": {"name": Path(result["bundle"]).name, "digest": {"sha256": bundle_sha256}},
               "builder": result["builder"], "snapshotId": result.get("snapshot_id")}
    got = {"treeDigest": result.get("tree_digest"),
           "reruns": [{"run": r["run"], "identical": all(f["status"].startswith(("identical", "nondeterministic"))
                                                         for f in r["comparison"]["files"])}
                      for r in result.get("reruns", []) if "comparison" in r]}
    verdict = result["level"] or "none"
    checks = [{"level": c["level"], "check": c["check"], "ok": c["ok"]} for c in result["checks"]]
    pred_extra = {"claim": result.get("claim"), "claimHolds": result.get("claim_holds"),
                  "networkCut": result["network_cut"]}
    stmt = attest.rebuild_statement(subjects, tool="verify", rebuilt=rebuilt, got=got, verdict=verdict, checks=checks)
    stmt["predicate"].update(pred_extra)
    return stmt


def _finish(result: dict, checks: _Checks, stages: dict, runs) -> dict:
    level = None
    for lv in LEVELS:
        if checks.ok(lv):
            level = lv
        else:
            break
    result["checks"] = checks.items
    result["level"] = level
    result["badges"] = {lv: (level is not None and LEVELS.index(lv) <= LEVELS.index(level)) for lv in LEVELS}
    result["stages_s"] = stages
    return result


def to_html(result: dict) -> str:
    rows = "\n".join(
        f"<tr class='{'ok' if c['ok'] else 'bad'}'><td>{html.escape(c['level'].title())}</td>"
        f"<td>{'&#10003;' if c['ok'] else '&#10007;'}</td><td>{html.escape(c['check'])}</td>"
        f"<td>{html.escape(c['detail'])}</td></tr>" for c in result["checks"])
    badges = " ".join(
        f"<span class='badge {'ok' if got else 'bad'}'>{lv.title()}</span>" for lv, got in result["badges"].items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>envgen verify: {html.escape(result.get('name') or result['bundle'])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td{{padding:.2em .6em;vertical-align:top}}
.ok{{color:#155724}}.bad{{color:#721c24}}.badge{{display:inline-block;padding:.3em .8em;border-radius:.3em;
margin-right:.5em;color:#fff}}.badge.ok{{background:#28a745}}.badge.bad{{background:#999}}</style></head>
<body><h1>Artifact evaluation: {html.escape(result.get('name') or '')}</h1>
<p>{badges}</p>
<p>Bundle <code>{html.escape(Path(result['bundle']).name)}</code>,
snapshot <code>{html.escape(result.get('snapshot_id') or '?')}</code>,
tree digest <code>{html.escape(result.get('tree_digest') or '?')}</code>; network during verification:
{'cut' if result['network_cut'] else 'present'}.</p>
<table>{rows}</table>
<p>Stages (s): {html.escape(json.dumps(result['stages_s']))}</p>
</body></html>
"""
