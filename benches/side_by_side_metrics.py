"""Infidelity with 100 perturbations per row: `attrib metrics` against Captum 0.9's `infidelity`.

Usage: python benches/side_by_side_metrics.py [ROUNDS] [REPEAT]
       python benches/side_by_side_metrics.py --captum-once   (one Captum call in a fresh process,
                                                               for whole-process timing)
(from the repository root, with the project venv; builds nothing: run
`cargo build --release -p attrib-cli` first.)

Case: the SmallCNN of bench_models.py for 3x32x32 images (fixed seed), traced to TorchScript in
target/bench_metrics/, a batch of 16 images (float32, fixed seed), targets = the model's
predictions, saliency attributions (signed gradients), 100 perturbations per row: Gaussian noise
of standard deviation 0.1, I = noise, perturbed input x - noise (Captum: a perturb_func drawing
with torch.randn, all 1600 rows in one call, max_examples_per_batch=None; attrib: its seeded
generator, chunks from its memory budget). 2 intra-op threads on both sides. Only the metric is
timed (the attributions are given to Captum; attrib's `elapsed_ms` excludes its attribution).

Each of ROUNDS rounds (default 5): Captum's warm median of REPEAT calls (default 7) after one
warm-up call, then `attrib metrics ... --repeat REPEAT --json` (`elapsed_ms`: median of the warm
repeats), then the floor: bare forward passes of the same 1616 rows (16 clean, 1600 perturbed)
from Python, in one no-grad call of the TorchScript model, and of its frozen, inference-optimised
copy (`torch.jit.optimize_for_inference(torch.jit.freeze(m))`, what attrib's evaluator may run
instead). Prints per round and the medians over the rounds, with the ratios Captum/attrib and
attrib/floor and the mean infidelity of both (different draws: close, not equal).
"""
import json
import os
import pathlib
import statistics
import subprocess
import sys

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "attrib"
OUT = ROOT / "target" / "bench_metrics"
MODEL = OUT / "small_cnn_3x32x32.pt"
INPUT = OUT / "x_16x3x32x32.npy"
THREADS, SAMPLES, STDEV = 2, 100, 0.1
ENV = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_models import SmallCNN, median_ms  # noqa: E402


def perturb(inp):
    noise = torch.randn(inp.shape) * STDEV
    return noise, inp - noise


def captum_case():
    """The model, input, targets and saliency attributions (from the files main() wrote)."""
    from captum.attr import Saliency

    model = torch.jit.load(str(MODEL)).eval()
    x = torch.from_numpy(np.load(INPUT))
    with torch.no_grad():
        target = model(x).argmax(1)
    attr = Saliency(model).attribute(x.clone().requires_grad_(), target=target, abs=False).detach()
    return model, x, target, attr


def captum_once():
    """One Captum infidelity call in this process (whole-process timing); prints the mean."""
    from captum.metrics import infidelity

    torch.set_num_threads(THREADS)
    model, x, target, attr = captum_case()
    print(float(infidelity(model, perturb, x, attr, target=target, n_perturb_samples=SAMPLES).mean()))


def main():
    if sys.argv[1:2] == ["--captum-once"]:
        return captum_once()
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    torch.set_num_threads(THREADS)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = SmallCNN(side=32).eval()
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.jit.trace(net, x).save(str(MODEL))
    np.save(INPUT, x.numpy())
    from captum.metrics import infidelity

    model, x, target, attr = captum_case()
    floor_rows = x.repeat(SAMPLES + 1, 1, 1, 1)
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.load(str(MODEL)).eval()))

    def floor(m):
        with torch.no_grad():
            return m(floor_rows)

    def captum():
        return infidelity(model, perturb, x, attr, target=target, n_perturb_samples=SAMPLES)

    cmd = [str(BIN), "metrics", "--metric", "infidelity", "--model", str(MODEL), "--input", str(INPUT), "--method", "saliency",
           "--samples", str(SAMPLES), "--radius", repr(STDEV), "--device", "cpu", "--json", "--repeat", str(reps)]
    rows = []
    for r in range(rounds):
        c = median_ms(captum, reps)
        run = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
        if run.returncode != 0:
            sys.exit(run.stderr)
        a = json.loads(run.stdout)
        row = {"round": r, "captum_ms": c, "attrib_ms": a["elapsed_ms"], "attrib_first_ms": a["first_ms"],
               "floor_ms": median_ms(lambda: floor(model), reps), "frozen_floor_ms": median_ms(lambda: floor(frozen), reps),
               "captum_mean": float(captum().mean()), "attrib_mean": a["mean"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
    ratios = sorted(r["captum_ms"] / r["attrib_ms"] for r in rows)
    print(f"infidelity, {SAMPLES} perturbations, batch 16, SmallCNN 3x32x32, {THREADS} threads, {rounds} rounds x {reps} warm calls (medians):")
    print(f"  Captum {med('captum_ms'):.2f} ms | attrib {med('attrib_ms'):.2f} ms | Captum/attrib "
          f"{statistics.median(ratios):.2f}x [{ratios[0]:.2f}, {ratios[-1]:.2f}] | mean infidelity Captum "
          f"{med('captum_mean'):.4g}, attrib {med('attrib_mean'):.4g}")
    print(f"  floor (1616 rows, one forward call): TorchScript {med('floor_ms'):.2f} ms, frozen copy "
          f"{med('frozen_floor_ms'):.2f} ms | attrib/floor {med('attrib_ms') / med('floor_ms'):.2f}x, "
          f"attrib/frozen floor {med('attrib_ms') / med('frozen_floor_ms'):.2f}x")


if __name__ == "__main__":
    main()
