#!/usr/bin/env bash
# The GPU check of issue 16, prepared for a machine with an NVIDIA GPU and no network.
#
#   bench/gpu_check.sh prepare [DIR]   here (network): lock and snapshot the CUDA variant of a tiny spec
#                                      into DIR (default .gpu-check, git-excluded), with the wheels of
#                                      envgen's runtime and the bubblewrap .deb the GPU machine may lack
#   bench/gpu_check.sh run [DIR]       there (offline, as root): install those, build the variant from the
#                                      store, then, each step reported in DIR/results.json (and $OUT if set):
#                                        1. nvidia-smi on the host (model, driver, CUDA);
#                                        2. envgen gpu-check --variant cuda12 (libcudart, cudaMemcpy round trip);
#                                        3. bench/gpu_compute.py under bwrap with --gpu (a PTX vector add of 16M
#                                           floats through the host's libcuda, checked element by element);
#                                        4. the same through --runtime sif and --runtime podman, where installed.
#
# With the library's device tool: `run` with carry [DIR] and a command such as
#   bench/gpu_check.sh run .gpu-check
# (DIR must be inside the repo and ignored by git: echo /.gpu-check/ >> .git/info/exclude).
# It has not been run on a GPU yet (see docs/benchmarks.md, "GPU").
set -uo pipefail

mode=${1:-}
dir=${2:-.gpu-check}
repo=$(cd "$(dirname "$0")/.." && pwd)
spec="$dir/proj/specs/tiny-gpu.toml"

case "$mode" in
prepare)
    set -e
    py=${PYTHON:-python3}
    rm -rf "$dir" && mkdir -p "$dir/whl" "$dir/debs"
    # no local project: DIR is git-ignored, and a local project's source pack holds only what git would track
    mkdir -p "$dir/proj/specs"
    cat >"$spec" <<'EOF'
# The GPU check's env (bench/gpu_check.sh): the tiny fixture's wheels, and a CUDA variant.
name = "tiny-gpu"
snapshot-date = 2025-05-08T00:00:00Z
python = "3.11"
requirements = ["six==1.17.0", "packaging==25.0"]

[variants.cuda12]
description = "the CUDA 12 runtime (PyPI's nvidia-cuda-runtime-cu12 wheel)"
requirements = ["nvidia-cuda-runtime-cu12==12.8.90"]
EOF
    PYTHONPATH="$repo" "$py" -m envgen lock "$spec" --variant cuda12
    PYTHONPATH="$repo" "$py" -m envgen snapshot "$spec" --variant cuda12 --store "$dir/store"
    # envgen's runtime dependencies, for the GPU machine's Python (3.12 on the device tool's machines)
    "$py" -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
        -d "$dir/whl" "uv>=0.13,<0.14" packaging networkx rich tomlkit python-debian zstandard pathspec \
        "cyclonedx-python-lib>=9,<12" msgspec
    (cd "$dir/debs" && apt-get download bubblewrap squashfs-tools >/dev/null)
    du -sh "$dir"
    echo "carry: [\"$dir\"]   command: bench/gpu_check.sh run $dir"
    ;;
run)
    out=${OUT:-$dir}
    log="$out/gpu_check.log"
    : >"$log"
    step() { echo "== $*" | tee -a "$log"; }
    command -v bwrap >/dev/null || for f in "$dir"/debs/bubblewrap_*.deb; do dpkg -x "$f" /; done
    command -v unsquashfs >/dev/null || for f in "$dir"/debs/squashfs-tools_*.deb; do dpkg -x "$f" /; done
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/envgen-site "$dir"/whl/*.whl \
        >>"$log" 2>&1
    export PYTHONPATH="$repo:/tmp/envgen-site" PYTHONUNBUFFERED=1
    E=(python3 -m envgen)
    S=(--store "$dir/store")
    results="$out/gpu_results.json"
    echo "{" >"$results"
    # one JSON document per step: the file's whole content, else its last line, else null
    record() {
        printf '  "%s": %s,\n' "$1" "$(python3 -c 'import json, sys
t = open(sys.argv[1]).read().strip()
try:
    print(json.dumps(json.loads(t)))
except ValueError:
    print(json.dumps(json.loads(t.splitlines()[-1])))' "$2" 2>/dev/null || echo null)" >>"$results"
    }

    step "host: nvidia-smi"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log"
    nvidia-smi 2>&1 | grep -m1 "CUDA Version" | tee -a "$log"

    step "build the cuda12 variant offline"
    /usr/bin/time -f "build %e s" "${E[@]}" build "$spec" --variant cuda12 "${S[@]}" --json \
        >"$out/build.json" 2>>"$log"
    record build "$out/build.json"

    step "envgen gpu-check (bwrap)"
    /usr/bin/time -f "gpu-check %e s" "${E[@]}" gpu-check "$spec" --variant cuda12 "${S[@]}" --json \
        >"$out/gpucheck.json" 2>>"$log"
    echo "exit $?" | tee -a "$log"
    record gpu_check "$out/gpucheck.json"

    # the vector add through one runtime: NAME, and the options that choose it
    compute() {
        local name=$1
        shift
        step "vector add under $name --gpu"
        "${E[@]}" run "$spec" --variant cuda12 "${S[@]}" "$@" --gpu --bind "$repo/bench:/bench:ro" \
            -- python3 /bench/gpu_compute.py >"$out/compute_$name.json" 2>>"$log"
        echo "exit $?" | tee -a "$log"
        record "compute_$name" "$out/compute_$name.json"
    }
    compute bwrap
    "${E[@]}" runs "${S[@]}" --json 2>/dev/null | python3 -c \
        "import json,sys; print(json.dumps(json.load(sys.stdin)['runs'][0]['host'].get('gpu')))" >"$out/record_gpu.json"
    record run_record_gpu "$out/record_gpu.json"

    if command -v mksquashfs >/dev/null; then compute sif --runtime sif; else step "sif: skipped (no mksquashfs)"; fi
    if command -v podman >/dev/null; then compute podman --runtime podman; else step "podman: skipped (not installed)"; fi
    echo '  "done": true' >>"$results"
    echo "}" >>"$results"
    cat "$results"
    ;;
*)
    echo "usage: bench/gpu_check.sh prepare|run [DIR]" >&2
    exit 2
    ;;
esac
