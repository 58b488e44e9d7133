"""DeepLIFT of `attrib explain` against Captum 0.9, side by side in one run, with the floor.

    python benches/side_by_side_deeplift.py [ROUNDS] [REPEAT]      (after `make build`)

Models: the small CNN of the other side-by-side scripts (3x16x16, batch 16) and torchvision's
ResNet-18 (10 classes, 3x32x32, batch 16), zero baselines, target class 0, 2 threads each.
Captum runs `DeepLift` on the eager modules (its hooks need modules; ResNet-18 as a twin with one
ReLU module per use, since Captum stops on torchvision's reused ReLU); attrib runs the traced
model through `attrib explain --method deeplift --json --repeat REPEAT` in a fresh process per
round (`elapsed_ms`: median of the warm calls; `first_ms`: the process's first call). The floor
is one forward + backward of the same 2N rows (inputs and baselines) through the traced model,
called from Python. Agreement is checked against Captum with `captum_compat=true` (Captum's
hooks lose the max-pool rule after a ReLU; attrib's default applies it, see docs/deeplift.md).
Prints one JSON line per model and round, then a table of medians (with each round's
attrib/floor and the load average) to quote.
"""
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
import torchvision
from captum.attr import DeepLift

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "python"))
from bench_models import SmallCNN, median_ms  # noqa: E402
from fixtures_deeplift import resnet_twin  # noqa: E402

warnings.filterwarnings("ignore")
ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = ROOT / "target" / "release" / "attrib"
OUT = ROOT / "target" / "bench_deeplift"
THREADS = 2
ENV = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}


def make_models():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    cnn = SmallCNN(side=16).eval()
    x_cnn = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(num_classes=10).eval()
    x_res = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    models = {}
    for name, eager, captum_model, x in [("small_cnn", cnn, cnn, x_cnn), ("resnet18", resnet, resnet_twin(resnet), x_res)]:
        traced = torch.jit.trace(eager, x)
        traced.save(str(OUT / f"{name}.pt"))
        np.save(OUT / f"{name}_x.npy", x.numpy())
        models[name] = (captum_model, torch.jit.load(str(OUT / f"{name}.pt")).eval(), x)
    return models


def attrib_cmd(name, out, repeat, compat=False):
    cmd = [str(BIN), "explain", "--model", str(OUT / f"{name}.pt"), "--input", str(OUT / f"{name}_x.npy"), "--method", "deeplift",
           "--device", "cpu", "--target", "0", "--out", str(out), "--json", "--repeat", str(repeat)]
    return cmd + (["--param", "captum_compat=true"] if compat else [])


def run_json(cmd):
    t = time.perf_counter()
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=ENV)
    return (time.perf_counter() - t) * 1e3, json.loads(res.stdout.strip().splitlines()[-1])


def floor_call(traced, x):
    rows = torch.cat([x, torch.zeros_like(x)])

    def f():
        xx = rows.clone().requires_grad_()
        out = traced(xx)[:, 0].sum()
        torch.autograd.grad(out, xx)
    return f


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    torch.set_num_threads(THREADS)
    load_start = f"{os.getloadavg()[0]:.2f}"
    models = make_models()
    rows = {n: [] for n in models}
    for r in range(rounds):
        for name, (captum_model, traced, x) in models.items():
            dl = DeepLift(captum_model)
            call = lambda: dl.attribute(x, baselines=torch.zeros_like(x), target=0)  # noqa: E731
            reference = call().detach().numpy()
            captum_ms = median_ms(call, repeat)
            floor_ms = median_ms(floor_call(traced, x), repeat)
            proc_ms, ours = run_json(attrib_cmd(name, OUT / f"{name}_attrib.npy", repeat))
            _, compat = run_json(attrib_cmd(name, OUT / f"{name}_compat.npy", 1, compat=True))
            got = np.load(OUT / f"{name}_compat.npy")
            row = {
                "model": name, "round": r, "rows": 2 * x.shape[0],
                "captum_warm_ms": round(captum_ms, 3), "attrib_warm_ms": ours["elapsed_ms"], "attrib_first_ms": ours["first_ms"],
                "captum_over_attrib": round(captum_ms / ours["elapsed_ms"], 3), "floor_ms": round(floor_ms, 3),
                "attrib_over_floor": round(ours["elapsed_ms"] / floor_ms, 3), "captum_over_floor": round(captum_ms / floor_ms, 3),
                "attrib_process_ms": round(proc_ms, 1),
                "max_rel_diff_compat": float(np.abs(got - reference).max() / max(np.abs(reference).max(), 1e-30)),
            }
            rows[name].append(row)
            print(json.dumps(row), flush=True)
    print(f"load average at the start {load_start}, at the end {os.getloadavg()[0]:.2f} (2 threads each; medians over {rounds} rounds)")
    print("| model | Captum | attrib | Captum / attrib | floor | attrib / floor (median; rounds) | Captum / floor | max_rel_diff_compat |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rs in rows.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("captum_warm_ms", "attrib_warm_ms", "floor_ms", "captum_over_attrib",
                                                                 "attrib_over_floor", "captum_over_floor")}
        lo = min(r["captum_over_attrib"] for r in rs)
        hi = max(r["captum_over_attrib"] for r in rs)
        per_round = ", ".join(f"{r['attrib_over_floor']:.2f}" for r in rs)
        diff = max(r["max_rel_diff_compat"] for r in rs)
        print(f"| {name} | {med['captum_warm_ms']:.1f} ms | {med['attrib_warm_ms']:.1f} ms | {med['captum_over_attrib']:.2f}x "
              f"[{lo:.2f}-{hi:.2f}] | {med['floor_ms']:.1f} ms | **{med['attrib_over_floor']:.2f}** ({per_round}) | "
              f"{med['captum_over_floor']:.2f} | {diff:.2e} |")


if __name__ == "__main__":
    main()
