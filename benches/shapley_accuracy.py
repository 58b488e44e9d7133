"""Accuracy per model call of Shapley value sampling: attrib's samplers against Captum's
ShapleyValueSampling, mean absolute error against the exact Shapley values over many seeds.

Usage: python benches/shapley_accuracy.py [SEEDS] [P1,P2,...] [N1,N2,...]
(from the repository root, with the project venv, after
`cargo build --release -p attrib-ablation --example shapley_accuracy`.)

Models (float64 on both sides, zero baseline, equal-sized groups so that the mean over elements
is the mean over groups):
- bc-mlp: the bundled breast-cancer MLP, its 8 rows, 15 groups (consecutive feature pairs), class 0;
- cnn16: the shared SmallCNN (benches/bench_models.py, side 16, seeded) on 4 seeded images
  3x16x16, 16 groups (4x4-pixel patches shared by the channels), class 0;
- tanh-mlp10: a seeded 10-32-3 tanh MLP on 8 seeded rows, each feature its own group, class 1.

The exact values come from attrib's `ExactShapley` (checked against Captum's ShapleyValues in
tests/shapley_parity.rs). For each number of permutations P and seed 0..SEEDS-1, attrib runs its
three samplers (random = Captum's scheme, antithetic, stratified) through the example
`shapley_accuracy` and Captum runs ShapleyValueSampling under `torch.manual_seed(seed)`. Model
evaluations per row: Captum 1 + P·G; attrib the distinct coalitions its walks visit (at most
2 + P·(G − 1)). The table gives the mean absolute error and `MAE · sqrt(evals)`, the error at
equal evaluations up to the Monte Carlo rate (lower is better; the ratio Captum/attrib of this
number is how much smaller attrib's error is at the same number of model evaluations).
KernelSHAP (budgets N = n_samples, model evaluations per row with the empty and full
coalitions): attrib's five designs (stratified, the default: uniform draws, shares by mass;
stratified-blocks: disjoint blocks of random permutations, shares by the square root of the
mass; blocks-slopes: the same coalitions with `regression=size-slopes`; paired kernel draws;
independent kernel draws) against Captum's `KernelShap` (torch.manual_seed(seed), zero baseline, its default
interpretable model), same models, mask and exact values.

Budget per call: the script prints, for each model, how many evaluations each of attrib's
estimators needs to reach the error of Captum's ShapleyValueSampling at its default 25
permutations and of Captum's KernelShap at 512 samples (log-log interpolation between measured
budgets), as a fraction of Captum's evaluations, with the fractions one standard error of the
errors either way in brackets (the reference's and the curve's relative standard errors added
in quadrature).
Results are written to target/bench_shapley_acc/results.json, and the curves (error against
model evaluations per row, log-log, one panel per model) to docs/img/shapley_accuracy.png
(permutation samplers) and docs/img/kernel_accuracy.png (KernelSHAP, with Captum's
ShapleyValueSampling for reference); `python benches/shapley_accuracy.py --plot` redraws them
from the saved results.
"""
import json
import pathlib
import subprocess
import sys

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_models import SmallCNN  # noqa: E402

OUT = ROOT / "target" / "bench_shapley_acc"
EXAMPLE = ROOT / "target" / "release" / "examples" / "shapley_accuracy"


def models():
    """name -> (TorchScript path, x [N, ...] float64, mask int64 (broadcastable), target)."""
    OUT.mkdir(parents=True, exist_ok=True)
    out = {}
    bc = ROOT / "examples" / "data" / "breast_cancer_mlp.pt"
    x = torch.from_numpy(np.load(ROOT / "examples" / "data" / "breast_cancer.npy")).double()
    out["bc-mlp"] = (bc, x, (torch.arange(30) // 2).reshape(1, 30), 0)

    torch.manual_seed(0)
    cnn = SmallCNN(side=16).eval()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(5)).double()
    path = OUT / "small_cnn.pt"
    torch.jit.trace(cnn, x.float()).save(str(path))
    r = torch.arange(16) // 4
    out["cnn16"] = (path, x, (r[:, None] * 4 + r[None, :]).reshape(1, 1, 16, 16), 0)

    torch.manual_seed(1)
    mlp = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3)).eval()
    with torch.no_grad():
        mlp[0].weight.mul_(3.0)
    x = torch.randn(8, 10, generator=torch.Generator().manual_seed(6)).double()
    path = OUT / "tanh_mlp10.pt"
    torch.jit.trace(mlp, x.float()).save(str(path))
    out["tanh-mlp10"] = (path, x, torch.arange(10).reshape(1, 10), 1)
    return out


def run_attrib(name, path, x, mask, target, seeds, budgets, kernel_budgets):
    np.save(OUT / f"{name}_x.npy", x.numpy())
    np.save(OUT / f"{name}_mask.npy", mask.numpy().astype(np.int64))
    exact_file = OUT / f"{name}_exact.npy"
    cmd = [str(EXAMPLE), str(path), str(OUT / f"{name}_x.npy"), str(OUT / f"{name}_mask.npy"), str(target), str(exact_file),
           str(seeds), ",".join(map(str, budgets)), ",".join(map(str, kernel_budgets))]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    return np.load(exact_file), rows


def run_captum_kernel(path, x, mask, target, exact, seeds, budgets):
    import warnings

    from captum.attr import KernelShap

    warnings.filterwarnings("ignore", message="You are providing multiple inputs")
    model = torch.jit.load(str(path)).eval().double()
    ks = KernelShap(model)
    exact = torch.from_numpy(exact).double()
    rows = []
    for n in budgets:
        errs = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            a = ks.attribute(x, baselines=0.0, target=target, feature_mask=mask, n_samples=n, perturbations_per_eval=n)
            errs.append(float((a.double() - exact).abs().mean()))
        e = np.array(errs)
        rows.append(dict(sampler="captum-kernel", n_samples=n, evals_per_row=n, mae=float(e.mean()),
                         stderr=float(e.std(ddof=1) / np.sqrt(len(e)))))
    return rows


def run_captum(path, x, mask, target, exact, seeds, budgets):
    from captum.attr import ShapleyValueSampling

    model = torch.jit.load(str(path)).eval().double()
    svs = ShapleyValueSampling(model)
    groups = int(mask.max()) + 1
    exact = torch.from_numpy(exact).double()
    rows = []
    for p in budgets:
        errs = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            a = svs.attribute(x, baselines=0.0, target=target, feature_mask=mask, n_samples=p, perturbations_per_eval=64)
            errs.append(float((a.double() - exact).abs().mean()))
        e = np.array(errs)
        rows.append(dict(sampler="captum", permutations=p, evals_per_row=1 + p * groups, mae=float(e.mean()),
                         stderr=float(e.std(ddof=1) / np.sqrt(len(e)))))
    return rows


STYLE = {"captum": ("Captum ShapleyValueSampling", "k", "o"), "random": ("attrib random", "tab:blue", "s"),
         "antithetic": ("attrib antithetic (default)", "tab:red", "^"), "stratified": ("attrib stratified", "tab:green", "D")}
KERNEL_STYLE = {"captum": ("Captum ShapleyValueSampling", "0.6", "o"), "captum-kernel": ("Captum KernelShap", "k", "v"),
                "kernel-independent": ("attrib KernelSHAP independent", "tab:blue", "s"),
                "kernel-paired": ("attrib KernelSHAP paired", "tab:green", "D"),
                "kernel-stratified": ("attrib KernelSHAP stratified (default)", "tab:orange", "x"),
                "kernel-stratified-blocks": ("attrib KernelSHAP stratified, blocks + sqrt shares", "tab:red", "^"),
                "kernel-blocks-slopes": ("attrib KernelSHAP blocks + sqrt shares, size slopes", "tab:purple", "*")}


def plot(results):
    draw(results, STYLE, ROOT / "docs" / "img" / "shapley_accuracy.png")
    if any(r["sampler"].startswith("kernel") for rows in results.values() for r in rows):
        draw(results, KERNEL_STYLE, ROOT / "docs" / "img" / "kernel_accuracy.png")


def needed_evals(rows, sampler, err):
    """Evaluations per row at which `sampler`'s curve reaches `err` (log-log interpolation), or None."""
    pts = sorted((r["evals_per_row"], r["mae"]) for r in rows if r["sampler"] == sampler)
    for (e0, m0), (e1, m1) in zip(pts, pts[1:]):
        if m0 >= err >= m1:
            t = (np.log(m0) - np.log(err)) / (np.log(m0) - np.log(m1))
            return float(np.exp(np.log(e0) + t * (np.log(e1) - np.log(e0))))
    return pts[0][0] if pts and pts[0][1] <= err else None


def budget_report(name, rows):
    refs = [("Captum ShapleyValueSampling, 25 permutations (default)", "captum", "permutations", 25),
            ("Captum KernelShap, 512 samples", "captum-kernel", "n_samples", 512)]
    for label, sampler, key, budget in refs:
        ref = next((r for r in rows if r["sampler"] == sampler and r.get(key) == budget), None)
        if ref is None:
            continue
        cells = []
        for ours in ("antithetic", "stratified", "random", "kernel-stratified", "kernel-stratified-blocks", "kernel-blocks-slopes",
                     "kernel-paired", "kernel-independent"):
            e = needed_evals(rows, ours, ref["mae"])
            if e is None:
                continue
            # One standard error either way: the reference's and the curve's (relative, added in
            # quadrature; the curve's at its point nearest e), moved along the curve.
            near = min((r for r in rows if r["sampler"] == ours), key=lambda r: abs(r["evals_per_row"] - e))
            rel = np.hypot(ref["stderr"] / ref["mae"], near["stderr"] / near["mae"])
            band = [needed_evals(rows, ours, ref["mae"] * f) for f in (1 + rel, 1 - rel)]
            span = (f" [{band[0] / ref['evals_per_row']:.2f}, {band[1] / ref['evals_per_row']:.2f}]"
                    if None not in band else "")
            cells.append(f"{ours} {e:.0f} ({e / ref['evals_per_row']:.2f}{span})")
        print(f"  {name}: {label}: error {ref['mae']:.4g} at {ref['evals_per_row']:.0f} evals; attrib needs: " + ", ".join(cells))


def draw(results, style, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6))
    for ax, (name, rows) in zip(axes, results.items()):
        for s, (label, colour, marker) in style.items():
            pts = sorted((r["evals_per_row"], r["mae"]) for r in rows if r["sampler"] == s)
            if pts:
                ax.loglog(*zip(*pts), marker=marker, color=colour, label=label, lw=1.2, ms=4)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(name)
        ax.set_xlabel("model evaluations per row")
        ax.grid(True, which="both", lw=0.3)
    axes[0].set_ylabel("mean |error| vs exact Shapley")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--plot":
        results = json.loads((OUT / "results.json").read_text())
        for name, rows in results.items():
            budget_report(name, rows)
        return plot(results)
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    budgets = [int(v) for v in sys.argv[2].split(",")] if len(sys.argv) > 2 else [2, 5, 10, 25, 50]
    kernel_budgets = ([int(v) for v in sys.argv[3].split(",")] if len(sys.argv) > 3
                      else [32, 48, 64, 80, 96, 112, 128, 160, 192, 256, 384, 512])
    if not EXAMPLE.exists():
        sys.exit(f"{EXAMPLE} is missing: cargo build --release -p attrib-ablation --example shapley_accuracy")
    torch.set_num_threads(2)
    results = {}
    for name, (path, x, mask, target) in models().items():
        exact, ours = run_attrib(name, path, x, mask, target, seeds, budgets, kernel_budgets)
        theirs = run_captum(path, x, mask, target, exact, seeds, budgets)
        theirs += run_captum_kernel(path, x, mask, target, exact, seeds, kernel_budgets)
        results[name] = ours + theirs
        print(f"\n{name}: {int(mask.max()) + 1} groups, {x.shape[0]} rows, {seeds} seeds; "
              f"mean |exact| = {np.abs(exact).mean():.4g}")
        print("P | " + " | ".join(f"{s}: evals, MAE, MAE*sqrt(evals)" for s in ("captum", "random", "antithetic", "stratified"))
              + " | Captum/best at equal evals")
        for p in budgets:
            cells, eff = [], {}
            for s in ("captum", "random", "antithetic", "stratified"):
                r = next(r for r in results[name] if r["sampler"] == s and r["permutations"] == p)
                eff[s] = r["mae"] * np.sqrt(r["evals_per_row"])
                cells.append(f"{r['evals_per_row']:.0f}, {r['mae']:.3g}±{r['stderr']:.1g}, {eff[s]:.3g}")
            best = min(("random", "antithetic", "stratified"), key=eff.get)
            print(f"{p} | " + " | ".join(cells) + f" | {eff['captum'] / eff[best]:.2f}x ({best})")
        kernel_samplers = ("kernel-stratified", "kernel-stratified-blocks", "kernel-blocks-slopes", "kernel-paired", "kernel-independent",
                           "captum-kernel")
        print("n_samples | " + " | ".join(kernel_samplers) + " (MAE)")
        for n in kernel_budgets:
            cells = [next(f"{r['mae']:.3g}±{r['stderr']:.1g}" for r in results[name] if r["sampler"] == s and r.get("n_samples") == n)
                     for s in kernel_samplers]
            print(f"{n} | " + " | ".join(cells))
        budget_report(name, results[name])
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    print("\nSummary: evaluations attrib needs for Captum's error, as a fraction of Captum's [± one standard error]")
    for name, rows in results.items():
        budget_report(name, rows)
    plot(results)


if __name__ == "__main__":
    main()
