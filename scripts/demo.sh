#!/usr/bin/env bash
# The main job, end to end: snapshot the locked ABIDE environment, build it
# hermetically, and run the ABIDE pipeline inside it on synthetic data.
# Usage: scripts/demo.sh [OUTDIR]   (default: out/demo)
set -euo pipefail
cd "$(dirname "$0")/.."
ENVGEN=${ENVGEN:-.venv/bin/envgen}
OUT=${1:-out/demo}
SPEC=specs/abide.toml
SUBJECTS=${ABIDE_SUBJECTS:-120}

mkdir -p "$OUT/data" "$OUT/results"
OUT=$(cd "$OUT" && pwd)

echo "== 1. snapshot: every wheel and .deb of specs/pylock.abide.toml into the store"
# A pinned .deb that neither the mirror nor snapshot.debian.org serves any more
# makes this re-lock a copy of the spec under $OUT/relock (with a notice) and
# go on with that copy; the committed lock is never rewritten.
SPEC=$(python3 scripts/demo_snapshot.py "$SPEC" "$OUT" --envgen "$ENVGEN")
echo "== 2. build: the env tree, offline, in a network namespace"
$ENVGEN build "$SPEC"
echo "== 3. synthetic ABIDE data ($SUBJECTS subjects, real on-disk layout), made inside the env"
$ENVGEN run "$SPEC" --bind "$OUT/data:/data" --label demo-synth \
    -- abide-pipeline synth --out /data --seed 0 --n-subjects "$SUBJECTS"
echo "== 4. the ABIDE pipeline inside the env (network cut, data read-only)"
$ENVGEN run "$SPEC" --bind "$OUT/data:/data:ro" --bind "$OUT/results:/out" --label demo \
    --reason "README quick start" -- abide-pipeline --input-dir /data --output-dir /out --random-state 0
echo "== 5. the top candidates"
$ENVGEN run "$SPEC" --bind "$OUT/results:/out" --label demo-report -- abide-pipeline report /out --top 5
RUN=$($ENVGEN runs --json --limit 10 | python3 -c 'import json,sys; print(next(r["id"] for r in json.load(sys.stdin)["runs"] if r["label"] == "demo"))')
echo
echo "outputs:    $OUT/results"
echo "provenance: envgen runs show $RUN   (check it with: envgen rerun $RUN)"
