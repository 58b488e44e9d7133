"""PGD with 20 steps: `attrib attack` against Captum 0.9's `PGD` on a small CNN, with the floor.

Usage: python benches/side_by_side_attack.py [ROUNDS] [REPEAT]
       python benches/side_by_side_attack.py --captum-once   (one Captum PGD call in a fresh
                                                             process on the files a run wrote,
                                                             for whole-process timing)
(from the repository root, with the project venv; builds nothing: run
`cargo build --release -p attrib-cli` first.)

Case: the SmallCNN of bench_models.py for 3x16x16 images (fixed seed), traced to TorchScript in
target/bench_attack/, a batch of 16 images (float32, fixed seed, values in [0, 1]), labels = the
model's predictions, L-inf PGD with radius 8/255, step size 2/255, 20 steps, no random start,
bounds [0, 1], 2 intra-op threads on both sides (ATTACK_BENCH_THREADS=1 for one: steadier when the
machine is loaded; ATTACK_BENCH_BIN=PATH runs another `attrib` binary, e.g. a copy of the previous
build, for a before/after comparison). The model outputs logits: Captum runs with
`loss_func = cross_entropy(reduction="none")` (its default, -log of the output, is meant for
probabilities), attrib with `--loss auto`, which picks cross-entropy on logits.

Each of ROUNDS rounds (default 5) runs back to back:
- Captum in this process: the warm median of REPEAT calls (default 7) after one warm-up call;
- `attrib attack --device cpu ... --json --repeat REPEAT`: its `elapsed_ms` (median of the warm
  repeats; each call includes attrib's clean forward pass, which also chooses the loss, and the
  forward pass on the result for the predictions after);
- the floor: 20 bare forward+backward passes of the batch (cross-entropy, gradient with respect
  to the input) through the TorchScript module from Python, warm median of REPEAT calls.
It checks that the two adversarial batches agree (max abs difference) and prints the medians over
the rounds: Captum, attrib, Captum/attrib (lowest and highest round), the floor, attrib/floor and
Captum/floor, then the same as a Markdown table to quote, with the load average at the start and
the end. The machine is shared and noisy: quote medians of several rounds.
"""
import json
import os
import pathlib
import statistics
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(os.environ.get("ATTACK_BENCH_BIN", ROOT / "target" / "release" / "attrib"))  # another build to compare
OUT = ROOT / "target" / "bench_attack"
MODEL = OUT / "small_cnn_3x16x16.pt"
INPUT = OUT / "x_16x3x16x16.npy"
LABELS = OUT / "labels.npy"
THREADS = int(os.environ.get("ATTACK_BENCH_THREADS", "2"))  # both sides; 1 is steadier on a loaded machine
EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 20
ENV = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_models import SmallCNN, median_ms  # noqa: E402


def ce(out, target):
    return F.cross_entropy(out, target, reduction="none")


def make_files():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = SmallCNN(side=16).eval()
    x = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.jit.trace(model, x).save(str(MODEL))
    np.save(INPUT, x.numpy())
    with torch.no_grad():
        np.save(LABELS, model(x).argmax(1).numpy().astype(np.int64))


def captum_once():
    """One Captum PGD call in this process (whole-process timing); prints the success rate."""
    from captum.robust import PGD

    torch.set_num_threads(THREADS)
    model = torch.jit.load(str(MODEL)).eval()
    x = torch.from_numpy(np.load(INPUT))
    y = torch.from_numpy(np.load(LABELS))
    adv = PGD(model, ce, lower_bound=0.0, upper_bound=1.0).perturb(x, EPS, ALPHA, STEPS, y, norm="Linf")
    with torch.no_grad():
        print(float((model(adv).argmax(1) != y).float().mean()))


LOAD_START = os.getloadavg()


def main():
    if sys.argv[1:2] == ["--captum-once"]:
        return captum_once()
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    torch.set_num_threads(THREADS)
    make_files()
    from captum.robust import PGD

    model = torch.jit.load(str(MODEL)).eval()
    x = torch.from_numpy(np.load(INPUT))
    y = torch.from_numpy(np.load(LABELS))
    pgd = PGD(model, ce, lower_bound=0.0, upper_bound=1.0)

    def captum():
        return pgd.perturb(x, EPS, ALPHA, STEPS, y, norm="Linf")

    def floor():
        for _ in range(STEPS):
            inp = x.detach().requires_grad_()
            torch.autograd.grad(ce(model(inp), y).sum(), inp)

    adv_out = OUT / "adv.npy"
    cmd = [str(BIN), "attack", "--model", str(MODEL), "--input", str(INPUT), "--method", "pgd", "--epsilon", repr(EPS),
           "--step-size", repr(ALPHA), "--steps", str(STEPS), "--bounds", "0,1", "--target", str(LABELS), "--device", "cpu",
           "--out", str(adv_out), "--json", "--repeat", str(reps)]
    rows = []
    for r in range(rounds):
        c = median_ms(captum, reps)
        run = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
        if run.returncode != 0:
            sys.exit(run.stderr)
        a = json.loads(run.stdout)
        fl = median_ms(floor, reps)
        diff = float((torch.from_numpy(np.load(adv_out)) - captum()).abs().max())
        row = {"round": r, "captum_ms": c, "attrib_ms": a["elapsed_ms"], "attrib_first_ms": a["first_ms"], "floor_ms": fl,
               "loss": a["loss"], "success_rate": a["success_rate"], "max_abs_diff": diff}
        rows.append(row)
        print(json.dumps(row), flush=True)
    med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
    ratios = sorted(r["captum_ms"] / r["attrib_ms"] for r in rows)
    load_end = os.getloadavg()
    c, a, f = med("captum_ms"), med("attrib_ms"), med("floor_ms")
    print(f"PGD {STEPS} steps, batch 16, SmallCNN 3x16x16, {THREADS} threads, {rounds} rounds x {reps} warm calls (medians):")
    print(f"  Captum {c:.2f} ms | attrib {a:.2f} ms | Captum/attrib "
          f"{statistics.median(ratios):.2f}x [{ratios[0]:.2f}, {ratios[-1]:.2f}]")
    print(f"  floor (20 fwd+bwd) {f:.2f} ms | attrib/floor {a / f:.2f}x | "
          f"Captum/floor {c / f:.2f}x | max |attrib - Captum| {max(r['max_abs_diff'] for r in rows):.2e}")
    print()
    print(f"Table to quote (load average {LOAD_START[0]:.2f} at the start, {load_end[0]:.2f} at the end; "
          f"attrib's first call {med('attrib_first_ms'):.1f} ms):")
    print()
    print("| | warm median | vs floor |")
    print("|---|---|---|")
    print(f"| Captum `PGD.perturb` | {c:.1f} ms | {c / f:.2f}x |")
    print(f"| `attrib attack --method pgd` | {a:.1f} ms | {a / f:.2f}x |")
    print(f"| floor: {STEPS} forward+backward passes from Python | {f:.1f} ms | 1 |")
    print()
    print(f"Captum/attrib **{statistics.median(ratios):.2f}x** (median of the rounds' ratios; rounds "
          f"{', '.join(f'{r:.2f}x' for r in ratios)})")

if __name__ == "__main__":
    main()
