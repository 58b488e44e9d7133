"""KernelSHAP and LIME: attrib against Captum 0.9, side by side in one run (speed), and accuracy
per model call against exact Shapley values.

Usage: python benches/side_by_side_kernel.py [ROUNDS] [REPEAT] [SEEDS]
(from the repository root, with the project venv; builds nothing: run
`cargo build --release -p attrib-cli` first.)

Speed (2 intra-op threads on both sides, target class 0, zero baselines): the bundled
breast-cancer MLP (30 features, each its own group) on its 8 rows, 2000 samples per row
(16,000 model rows):
- Captum `KernelShap(n_samples=2000)` and `Lime(n_samples=2000)` (defaults: Lasso(alpha=0.01),
  exponential cosine kernel), at their best `perturbations_per_eval` among 1, 64, 2000 — the
  warm median of REPEAT calls after one warm-up call;
- `attrib explain --method kernel-shap|lime --samples 2000 --json --repeat REPEAT`: the warm
  median (`elapsed_ms`, attribution only);
- the floor: one bare forward pass of the same 16,000 rows through the TorchScript module from
  Python (warm median).
Each of ROUNDS rounds (default 3) runs them back to back; the medians over the rounds are printed.

Accuracy per model call: the same MLP with its 30 features in 10 groups (the ten base
measurements: mean, error and worst together) and in 15 groups (consecutive pairs), exact
Shapley values by enumerating every coalition here in PyTorch (float64). At equal evaluations
per row (n_samples, both counting the empty and full coalitions), the mean absolute error over
rows, groups and SEEDS seeds (default 10) of: attrib KernelSHAP with the stratified design
(the default), with paired and with independent kernel draws, and Captum's KernelShap (seeded with torch.manual_seed).
The machines are shared and noisy: quote medians of several rounds.
"""
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import warnings

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
from bench_models import median_ms  # noqa: E402

BIN = ROOT / "target" / "release" / "attrib"
OUT = ROOT / "target" / "bench_kernel"
MODEL = ROOT / "examples" / "data" / "breast_cancer_mlp.pt"
INPUT = ROOT / "examples" / "data" / "breast_cancer.npy"
THREADS = 2
TARGET = 0
SAMPLES = 2000
ENV = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
BUDGETS = [32, 64, 128, 256, 512]
GROUPINGS = {"10 groups": np.arange(30) % 10, "15 groups": np.arange(30) // 2}


def attrib_run(method, extra, repeat=None):
    out = OUT / f"{method}.npy"
    cmd = [str(BIN), "explain", "--model", str(MODEL), "--input", str(INPUT), "--method", method, "--device", "cpu",
           "--target", str(TARGET), "--out", str(out), "--json", *extra]
    if repeat:
        cmd += ["--repeat", str(repeat)]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=ENV)
    return json.loads(res.stdout.strip().splitlines()[-1]), np.load(out)


def speed_round(model, x, repeat):
    from captum.attr import KernelShap, Lime

    row = {}
    n = x.shape[0]
    for method, cls in (("kernel-shap", KernelShap), ("lime", Lime)):
        explainer = cls(model)
        best = None
        for ppe in (1, 64, SAMPLES):
            def call(ppe=ppe):
                torch.manual_seed(0)
                return explainer.attribute(x, target=TARGET, n_samples=SAMPLES, perturbations_per_eval=ppe)
            ms = median_ms(call, repeat)
            if best is None or ms < best[0]:
                best = (ms, ppe)
        summary, _ = attrib_run(method, ["--samples", str(SAMPLES)], repeat)
        row[method] = {"captum_ms": best[0], "captum_ppe": best[1], "attrib_ms": summary["elapsed_ms"]}
    rows = x.repeat(SAMPLES, 1)
    with torch.no_grad():
        row["floor_ms"] = median_ms(lambda: model(rows), repeat)
    row["model_rows"] = SAMPLES * n
    return row


def exact_shapley(model, x, groups):
    """Exact Shapley values [n, G] of the target output (zero baseline), float64."""
    g = int(groups.max()) + 1
    m = 1 << g
    bits = ((torch.arange(m)[:, None] >> torch.arange(g)[None, :]) & 1).double()  # [m, G]
    keep = bits[:, torch.as_tensor(groups)]  # [m, 30]
    with torch.no_grad():
        v = model((keep[:, None, :] * x.double()[None]).reshape(-1, 30).float()).double()[:, TARGET].reshape(m, -1)
    size = bits.sum(1)
    fact = [float(math.factorial(k)) for k in range(g + 1)]
    w = torch.tensor([fact[s] * fact[g - s - 1] / fact[g] for s in range(g)], dtype=torch.float64)
    phi = torch.zeros(g, v.shape[1], dtype=torch.float64)
    for j in range(g):
        on = bits[:, j] == 1
        # v(S ∪ {j}) − v(S): row s with bit j set pairs with s − 2^j.
        idx = torch.nonzero(on).squeeze(1)
        phi[j] = (w[(size[idx] - 1).long()][:, None] * (v[idx] - v[idx - (1 << j)])).sum(0)
    return phi.T  # [n, G]


def per_group(attr, groups):
    """Group values [n, G] from element attributions [n, 30] (the first element of each group)."""
    g = int(groups.max()) + 1
    first = [int(np.nonzero(groups == j)[0][0]) for j in range(g)]
    return np.asarray(attr)[:, first]


def accuracy(model, x, seeds):
    from captum.attr import KernelShap

    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, groups in GROUPINGS.items():
        exact = exact_shapley(model, x, groups).numpy()
        mask_file = OUT / f"mask_{len(set(groups))}.npy"
        np.save(mask_file, groups.astype(np.int64))
        mask = torch.as_tensor(groups).reshape(1, 30)
        ks = KernelShap(model)
        for budget in BUDGETS:
            errs = {"attrib stratified": [], "attrib paired": [], "attrib unpaired": [], "captum": []}
            for seed in range(seeds):
                for label, stratified, paired in (("attrib stratified", "true", "true"), ("attrib paired", "false", "true"),
                                                  ("attrib unpaired", "false", "false")):
                    _, a = attrib_run("kernel-shap", ["--samples", str(budget), "--seed", str(seed), "--feature-mask", str(mask_file),
                                                      "--param", f"stratified={stratified}", "--param", f"paired={paired}"])
                    errs[label].append(np.abs(per_group(a, groups) - exact).mean())
                torch.manual_seed(seed)
                c = ks.attribute(x, target=TARGET, n_samples=budget, feature_mask=mask, perturbations_per_eval=budget)
                errs["captum"].append(np.abs(per_group(c.numpy(), groups) - exact).mean())
            results[(name, budget)] = {k: float(np.mean(v)) for k, v in errs.items()}
            print(json.dumps({"grouping": name, "n_samples": budget, **results[(name, budget)]}), flush=True)
    return results


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    torch.set_num_threads(THREADS)
    # Captum warns that a batch trains one surrogate per row (what is timed here).
    warnings.filterwarnings("ignore", message="You are providing multiple inputs")
    OUT.mkdir(parents=True, exist_ok=True)
    model = torch.jit.load(str(MODEL)).eval()
    x = torch.from_numpy(np.load(INPUT))
    rows = []
    for r in range(rounds):
        row = speed_round(model, x, repeat)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\nspeed (medians of {rounds} rounds; {SAMPLES} samples x {x.shape[0]} rows = {SAMPLES * x.shape[0]} model rows):")
    floor = statistics.median(r["floor_ms"] for r in rows)
    for method in ("kernel-shap", "lime"):
        cap = statistics.median(r[method]["captum_ms"] for r in rows)
        ours = statistics.median(r[method]["attrib_ms"] for r in rows)
        ratios = [r[method]["captum_ms"] / r[method]["attrib_ms"] for r in rows]
        print(f"  {method:12s} Captum {cap:9.1f} ms (ppe {rows[-1][method]['captum_ppe']})  attrib {ours:7.2f} ms  "
              f"Captum/attrib {statistics.median(ratios):6.1f}x [{min(ratios):.1f}, {max(ratios):.1f}]  "
              f"floor {floor:.2f} ms  attrib/floor {ours / floor:.1f}x")
    print(f"\naccuracy: mean absolute error against exact Shapley values, {seeds} seeds:")
    acc = accuracy(model, x, seeds)
    for name in GROUPINGS:
        print(f"  {name}:")
        print("    n_samples  attrib stratified  attrib paired  attrib unpaired  Captum KernelShap  Captum/attrib stratified")
        for budget in BUDGETS:
            e = acc[(name, budget)]
            print(f"    {budget:9d}  {e['attrib stratified']:17.5f}  {e['attrib paired']:13.5f}  {e['attrib unpaired']:15.5f}  "
                  f"{e['captum']:17.5f}  {e['captum'] / e['attrib stratified']:8.1f}x")


if __name__ == "__main__":
    main()
