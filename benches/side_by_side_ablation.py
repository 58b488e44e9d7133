"""Side-by-side timing of attrib and Captum 0.9 on the same perturbation workloads.

Usage: python benches/side_by_side_ablation.py [REPEATS] [ROUNDS] [--same-allocator]
(from the repository root, with the project venv; builds nothing: run
`cargo build --release -p attrib-examples --example ablation_bench` first.)

The machines are noisy, so the comparison runs in ROUNDS rounds (default 5); each round times
Captum at every `perturbations_per_eval` and attrib (best of REPEATS calls each, after a
warm-up), back to back, and the script prints the median, lowest and highest per-round ratio.
attrib sets glibc's allocator thresholds for itself (see attrib-tensor's `host_alloc`);
`--same-allocator` runs the whole comparison again under the same settings given to both
processes through the environment, so that the ratio owes nothing to the allocator.

Case: a CNN on a batch of 16 images 3x32x32, target class 0.
- FeatureAblation with a 4x4-pixel grid mask (64 groups); Captum at its best
  `perturbations_per_eval` among 1, 2, 4, ..., 64.
- Occlusion with 3x8x8 windows, strides 3x4x4 (49 windows); Captum at its best
  `perturbations_per_eval` among 1, 7, 49.
Two CNNs are timed: `small` (one strided conv) and `medium` (two 3x3 convs with pooling), since the
share of the work that is the model's own forward pass decides how much any library can save.
Both sides use 2 intra-op threads and report the best of REPEATS runs after a warm-up.
"""
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn as nn
from captum.attr import FeatureAblation, Occlusion

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "examples" / "ablation_bench"


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 4, stride=4)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class Medium(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.c2(x)), 2)
        return self.fc(x.flatten(1))


def best_ms(repeats, f):
    f()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        best = min(best, (time.perf_counter() - t) * 1e3)
    return best


ALLOCATOR_ENV = {"MALLOC_TRIM_THRESHOLD_": str(512 << 20), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}


def one_round(repeats, name, model, path, x, mask, xpath):
    fa = FeatureAblation(model)
    fa_times = {
        ppe: best_ms(repeats, lambda: fa.attribute(x, target=0, feature_mask=mask, perturbations_per_eval=ppe))
        for ppe in [1, 2, 4, 8, 16, 32, 64]
    }
    oc = Occlusion(model)
    oc_times = {
        ppe: best_ms(
            repeats,
            lambda: oc.attribute(x, target=0, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4),
                                 perturbations_per_eval=ppe),
        )
        for ppe in [1, 7, 49]
    }
    out = subprocess.run([str(BIN), str(path), str(xpath), str(repeats)], check=True,
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    ours = json.loads(out.stdout.strip().splitlines()[-1])
    fa_best = min(fa_times, key=fa_times.get)
    oc_best = min(oc_times, key=oc_times.get)
    return {
        "model": name,
        "captum_feature_ablation_ms": {str(k): round(v, 2) for k, v in fa_times.items()},
        "captum_occlusion_ms": {str(k): round(v, 2) for k, v in oc_times.items()},
        "attrib_feature_ablation_ms": ours["feature_ablation_ms"],
        "attrib_occlusion_ms": ours["occlusion_ms"],
        "feature_ablation_ratio": round(fa_times[fa_best] / ours["feature_ablation_ms"], 2),
        "feature_ablation_captum_best_ppe": fa_best,
        "occlusion_ratio": round(oc_times[oc_best] / ours["occlusion_ms"], 2),
        "occlusion_captum_best_ppe": oc_best,
    }


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    repeats = int(args[0]) if len(args) > 0 else 5
    rounds = int(args[1]) if len(args) > 1 else 5
    if "--same-allocator" in sys.argv and not all(os.environ.get(k) == v for k, v in ALLOCATOR_ENV.items()):
        # glibc reads these when the process starts: run again with them set (for Captum's
        # Python process and, inherited, for attrib's).
        sys.exit(subprocess.run([sys.executable, *sys.argv], env={**os.environ, **ALLOCATOR_ENV}).returncode)
    torch.set_num_threads(2)
    if not BIN.exists():
        sys.exit(f"{BIN} is missing: cargo build --release -p attrib-examples --example ablation_bench")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 32, 32, generator=g)
    r = torch.arange(32) // 4
    mask = (r[:, None] * 8 + r[None, :]).reshape(1, 1, 32, 32)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="attrib-bench-"))
    import numpy as np

    np.save(tmp / "x.npy", x.numpy())
    models = {}
    for name, cls in [("small", Small), ("medium", Medium)]:
        torch.manual_seed(1)
        model = torch.jit.trace(cls().eval(), x[:1])
        path = tmp / f"{name}.pt"
        model.save(str(path))
        models[name] = (model, path)
    allocator = "same glibc allocator settings for both" if all(
        os.environ.get(k) == v for k, v in ALLOCATOR_ENV.items()) else "default allocator for Captum"
    results = {name: [] for name in models}
    for i in range(rounds):
        for name, (model, path) in models.items():
            row = one_round(repeats, name, model, path, x, mask, tmp / "x.npy")
            row["round"] = i
            results[name].append(row)
            print(json.dumps(row), flush=True)
    print(f"Captum at its best perturbations_per_eval / attrib default, {rounds} rounds ({allocator}):")
    for name, rows in results.items():
        for key, label in [("feature_ablation_ratio", "feature ablation"), ("occlusion_ratio", "occlusion")]:
            v = sorted(r[key] for r in rows)
            print(f"  {name}: {label} median {statistics.median(v):.2f}x (lowest {v[0]:.2f}, highest {v[-1]:.2f})")


if __name__ == "__main__":
    main()
