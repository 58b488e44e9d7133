"""Integrated Gradients, Captum vs attrib, on the same TorchScript models in one run.

Cases (50 steps, Gauss-Legendre, zero baseline, target class 0, 2 threads):
- torchvision ResNet-18 (random weights), one 224x224 image: attrib IG time over the raw
  libtorch forward+backward of the same 50-image batch (goal <= 1.05) and Captum / attrib
  (goal > 1);
- a small CNN, batch 16 of 32x32: Captum / attrib (goal >= 1.5).

attrib is timed by `examples/ig_timing.rs` (built in release), Captum here; medians of REPS runs.
Usage: python benches/side_by_side_ig.py [REPS]   (run from the repository root, venv active)
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import torch
from captum.attr import IntegratedGradients

THREADS = 2
STEPS = 50
ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench_ig"


from bench_models import SmallCNN, median_ms  # noqa: E402  (benches/ is the script's folder)


def cases():
    import torchvision

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None).eval()
    small = SmallCNN().eval()
    g = torch.Generator().manual_seed(1)
    return {
        "resnet18_1x224": (resnet, torch.randn(1, 3, 224, 224, generator=g)),
        "small_cnn_16x32": (small, torch.randn(16, 3, 32, 32, generator=g)),
    }


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    torch.set_num_threads(THREADS)
    OUT.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "attrib-examples", "--example", "ig_timing"], cwd=ROOT, check=True, env=env)
    binary = ROOT / "target" / "release" / "examples" / "ig_timing"
    for name, (model, x) in cases().items():
        path = OUT / f"{name}.pt"
        torch.jit.trace(model, x).save(str(path))
        np.save(OUT / f"{name}.npy", x.numpy())
        traced = torch.jit.load(str(path)).eval()
        ig = IntegratedGradients(traced)
        captum = median_ms(lambda: ig.attribute(x, target=0, n_steps=STEPS, method="gausslegendre"), reps)
        res = subprocess.run(
            [str(binary), str(path), str(OUT / f"{name}.npy"), str(STEPS), str(reps), str(THREADS)],
            check=True, capture_output=True, text=True, env=env,
        )
        r = json.loads(res.stdout.strip().splitlines()[-1])
        a, raw = r["attrib_ig_ms"], r["raw_fwd_bwd_ms"]
        print(
            f"{name}: captum {captum:.1f} ms | attrib {a:.1f} ms | raw libtorch fwd+bwd of {r['rows']} rows {raw:.1f} ms"
            f" | attrib/raw {a / raw:.3f} | captum/attrib {captum / a:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
