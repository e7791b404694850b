#!/usr/bin/env bash
# One prepared check for a GPU machine (an H200 here: Python 3.12, torch 2.11 + CUDA 13, no network).
# Builds the extension with CUDA against the machine's own torch, runs the op/engine tests (CUDA
# parity included), the engine benchmark at GPU sizes and the full MNIST atlas, and prints tables.
# Budget: < 10 minutes (DEEPDIG_GPU_ATLAS=0 skips the atlas; run it with DEEPDIG_GPU_ATLAS=0 when the
# device time left is under 15 minutes).
#   bash benchmarks/gpu_check.sh            (writes logs and JSON to ${OUT:-.benchmarks/gpu})
# Carry checkpoints/ along to skip training the MNIST CNN there (about half a minute on a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-.benchmarks/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
t0=$SECONDS
step() { printf '\n=== [%ss] %s\n' "$((SECONDS - t0))" "$*"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"

step "build with CUDA (sm_90)"
rm -f deepdig_fast/_C*.so
FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="9.0" MAX_JOBS=16 $PY setup.py -q build_ext --inplace > "$OUT/build.log" 2>&1 \
  || { tail -40 "$OUT/build.log"; exit 1; }
$PY -c "import deepdig_fast, json; print(json.dumps(deepdig_fast.build_info()))" | tee "$OUT/build_info.json"

step "tests: ops and engine (its compact, static and CUDA-graph loops; IEEE float32) on CPU and CUDA"
timeout 240 $PY -m pytest -q -p no:cacheprovider tests/test_bracket.py tests/test_nearest_neighbor.py tests/test_engine.py \
  tests/test_engine_loops.py tests/test_precision.py tests/test_max_pool2d.py tests/test_conv2d.py tests/test_binary_cross_entropy.py 2>&1 \
  | tee "$OUT/tests.txt" | tail -15

step "benchmark: borderline engine at GPU size (rows f_*: compact / static / graph loops)"
DEEPDIG_BENCH_PAIRS=${DEEPDIG_BENCH_PAIRS:-100000} DEEPDIG_BENCH_REF_PAIRS=${DEEPDIG_BENCH_REF_PAIRS:-300} \
  timeout 300 $PY -m pytest -q -p no:cacheprovider benchmarks/bench_bisect.py -s \
  --benchmark-json "$OUT/bench_bisect.json" 2>&1 | tee "$OUT/bench.txt" | tail -30
cp .benchmarks/bisect-summary.json "$OUT/" 2>/dev/null || true

step "tests: prepared classifier (torch.compile), compiled and vectorised autoencoder training"
timeout 240 $PY -m pytest -q -p no:cacheprovider tests/test_fast.py tests/test_adversarial.py -k "fast or compile or vectoris or cuda" 2>&1 \
  | tee "$OUT/tests_fast.txt" | tail -8

step "benchmark: eager vs prepared forwards (engine, trajectory), AE training eager/compiled, two AEs sequential/vectorised"
DEEPDIG_BENCH_PAIRS=${DEEPDIG_BENCH_PAIRS:-100000} DEEPDIG_BENCH_REF_PAIRS=200 DEEPDIG_BENCH_TRAIN_STEPS=${DEEPDIG_BENCH_TRAIN_STEPS:-1000} \
  timeout 300 $PY -m pytest -q -p no:cacheprovider benchmarks/bench_fast.py -s \
  --benchmark-json "$OUT/bench_fast.json" 2>&1 | tee "$OUT/bench_fast.txt" | tail -25
cp .benchmarks/fast-summary.json "$OUT/" 2>/dev/null || true

if [ "${DEEPDIG_GPU_ATLAS:-1}" = 1 ]; then
  step "the full per-target MNIST atlas on one GPU (goal: under 3 minutes)"
  timeout 420 $PY -m deepdig_fast atlas --dataset mnist --arch cnn --classes all --device cuda --quiet \
    --out "$OUT/atlas-mnist-cnn" 2>&1 | tail -15 || echo "atlas: did not finish (exit $?)"
  $PY benchmarks/bench_atlas.py "$OUT/atlas-mnist-cnn" 2>&1 | tee "$OUT/atlas-summary.txt" || true
fi
step "done"
