#!/usr/bin/env bash
# The recorded zoo run (benchmarks/RESULTS.md, "A torchvision model on an image folder"):
#   1. the shipped MNIST, classes 3 and 5, written as an image folder of 64 px RGB PNGs;
#   2. torchvision's ResNet-18 trained on it with ImageNet normalisation inside the model;
#   3. deepdig run --dataset imagefolder --model torchvision:resnet18 --weights ... --normalize imagenet
#      (time and peak memory from /usr/bin/time -v);
#   4. the same command with --normalize omitted (auto: the torchvision weights' own ImageNet
#      normalisation), in the same folder: every stage is reused, the classifier is the same;
#   5. --normalize none: the model gets [0, 1] pixels it was not trained on -- another classifier,
#      whose boundary the run then measures (the input-contract guard, --min-accuracy, refuses such
#      a model only when it gets a class mostly wrong; this one keeps most of its accuracy).
# Needs the zoo extras (torchvision, Pillow) and the extension built for the torch in use.
#   PYTHON=python bash benchmarks/zoo_e2e.sh [WORK_DIR] [AE_STEPS]
set -euo pipefail
PY=${PYTHON:-python}
WORK=${1:-/tmp/deepdig-zoo-e2e}
STEPS=${2:-200}
mkdir -p "$WORK"
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 2^20}' /proc/meminfo); $("$PY" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)')"
[ -d "$WORK/mnist35" ] || "$PY" benchmarks/zoo_e2e.py folder "$WORK/mnist35" --classes 3,5 --size 64 --train 1000 --test 300
[ -f "$WORK/r18.pt" ] || "$PY" benchmarks/zoo_e2e.py train "$WORK/mnist35" "$WORK/r18.pt" --epochs 2

run() {  # run LABEL ARGS...: one deepdig run under /usr/bin/time -v; prints its wall time and peak RSS
  local label=$1
  shift
  local rc=0
  /usr/bin/time -v -o "$WORK/$label.time" "$PY" -m deepdig_fast run --dataset imagefolder \
    --data-root "$WORK/mnist35" --model torchvision:resnet18 --weights "$WORK/r18.pt" --pair 3,5 \
    --steps "$STEPS" --device cpu "$@" >"$WORK/$label.log" 2>&1 || rc=$?
  echo "== $label: exit $rc, wall $(awk -F': ' '/Elapsed/ {print $2}' "$WORK/$label.time")," \
    "CPU $(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.0f s", u + s}' "$WORK/$label.time")," \
    "peak RSS $(awk -F': ' '/Maximum resident/ {printf "%.2f GB", $2 / 1e6}' "$WORK/$label.time")"
  tail -n 25 "$WORK/$label.log"
}

run imagenet --normalize imagenet --out "$WORK/run" --no-report
run omitted --out "$WORK/run" --no-report
run none --normalize none --out "$WORK/run-none" --no-report
"$PY" - "$WORK/run" "$WORK/run-none" <<'PY'
import json, sys
from pathlib import Path

for run in map(Path, sys.argv[1:]):
    m = json.loads((run / "manifest.json").read_text())
    t = json.loads((run / "timings.json").read_text())
    r = json.loads((run / "results.json").read_text())
    print(f"-- {run.name}: preprocessing {m['model_info']['preprocessing']}")
    print("   embedding layer", m["classifier"]["embedding_layer"], "| class accuracy", m["classifier"]["class_accuracy"])
    print("   stages reused by the last command:", sum(v["reused"] for v in t["stages"].values()), "of", len(t["stages"]))
    for key, d in r["directions"].items():
        rates = {k: (v.get("success_rate"), v.get("pairs")) for k, v in d["methods"].items()}
        print(f"   {key}: component I {d['component_one'].get('adversarial_rate')}; (success rate, pairs) {rates}")
PY
