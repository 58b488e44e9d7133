#!/usr/bin/env bash
# Issue 14's check, outside the test suite (it needs most of a 24 GB machine for a minute or
# two): four concurrent `attrib explain` runs of a large integrated-gradients job share the host
# memory budget (claims in $TMPDIR/attrib-budgets) and all finish. Prints each run's exit status,
# wall time and peak resident memory, and the machine's total memory.
#
#   bash scripts/concurrent-ig.sh [SIDE] [STEPS] [RUNS]    (defaults: 1024 32 4; after `make build`)
set -uo pipefail
cd "$(dirname "$0")/.."
SIDE=${1:-1024}; STEPS=${2:-32}; RUNS=${3:-4}
export LD_LIBRARY_PATH="$PWD/.libtorch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
.venv/bin/python - "$DIR" "$SIDE" <<'PY'
import sys, torch, numpy as np
d, side = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, padding=1),
                        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(256, 10)).eval()
torch.jit.trace(m, torch.zeros(1, 3, side, side)).save(f"{d}/model.pt")
np.save(f"{d}/x.npy", np.random.default_rng(0).standard_normal((2, 3, side, side)).astype(np.float32))
PY
echo "machine: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(nproc) cores; ${RUNS} runs of IG, 2x3x${SIDE}x${SIDE}, ${STEPS} steps"
for i in $(seq 1 "$RUNS"); do
  /usr/bin/time -f "run $i: exit %x, %e s, peak %M KiB" ./target/release/attrib explain --model "$DIR/model.pt" --input "$DIR/x.npy" \
    --method integrated-gradients --steps "$STEPS" --target 0 --device cpu --out "$DIR/out$i.npy" 2>&1 | grep -E "^run |error" &
done
wait
ls "$DIR"/out*.npy 2>/dev/null | wc -l | xargs echo "outputs written:"
