#!/usr/bin/env bash
# The GPU check of issue 17, in one command, on a machine with an NVIDIA GPU:
#   bash scripts/gpu-check.sh [PYTHON] [REPS]
# PYTHON: a python with torch 2.11 and torchvision (default: the project venv's). Captum comes
# from that python, else from a wheel under target/wheels/ (pure Python; `make gpu-check-prepare`
# downloads it here). The attrib binary is target/release/attrib, built beforehand (it can be built
# on another machine and carried: it finds libtorch through LD_LIBRARY_PATH, set below from PYTHON).
# Runs the CUDA tests (CPU vs CUDA for every registered method) and the side-by-side timings.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
REPS=${2:-5}
LIB=$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
WHEEL=$(ls target/wheels/captum-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$WHEEL" ]; then export PYTHONPATH="$PWD/$WHEEL${PYTHONPATH:+:$PYTHONPATH}"; fi
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "SKIPPED: $PY's torch sees no CUDA device; the GPU check needs one"
  exit 0
fi
echo "== CUDA tests (every registered method on CUDA against its CPU result)"
status=0
for t in target/release/gpu-tests/*; do
  if [ -x "$t" ]; then "$t" --ignored --test-threads 1 --nocapture || { echo "CUDA tests FAILED: $t"; status=1; }; fi
done
echo "== side by side with Captum on CUDA"
"$PY" scripts/gpu_check.py target/release/attrib target/gpu_check "$REPS" || status=1
exit $status
