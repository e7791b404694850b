#!/usr/bin/env bash
# Sets up a development environment on a fresh machine: a virtual environment in .venv with the CPU
# build of torch 2.13.0 and the other dependencies, then builds deepdig_fast's C++ extension into it.
# Idempotent: a second run reuses .venv and rebuilds only what changed.
#   PYTHON=python3.11 bash scripts/setup.sh     (choose the interpreter)
#   TORCH_SPEC="torch==2.14.1" bash scripts/setup.sh   (another torch; FORCE_CUDA=1 builds CUDA kernels)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

# Runs a pip command without the harmless "Location ... is ignored" warnings of this machine's pip
# configuration; pip's own exit status is kept (pipefail).
pip_quiet() { "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, numpy, sklearn, matplotlib, PIL, tqdm, pytest, pytest_benchmark, hypothesis, ninja, pandas, pyarrow, tensorboard" 2>/dev/null; then
  echo "[setup] installing $TORCH_SPEC and the dependencies"
  pip_quiet "$VENV/bin/pip" install -q --disable-pip-version-check "$TORCH_SPEC" ninja numpy scikit-learn matplotlib pillow tqdm pytest pytest-benchmark hypothesis pandas pyarrow tensorboard
fi
echo "[setup] building the extension (torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))"
MAX_JOBS=${MAX_JOBS:-2} pip_quiet "$VENV/bin/pip" install -q --disable-pip-version-check --no-build-isolation --no-deps -e .
"$VENV/bin/python" -c "import deepdig_fast; print('[setup] ok:', deepdig_fast.build_info())"
