"""Benchmark mode of `attrib explain` against Captum 0.9 on a small CNN, method by method.

Usage: python benches/side_by_side_repeat.py [ROUNDS] [REPEAT]
       python benches/side_by_side_repeat.py --summary FILE...
(from the repository root, with the project venv; builds nothing: run
`cargo build --release -p attrib-cli` first.) Each round prints one JSON line per method; the
`--summary` form prints the table again from saved output of one or more runs (rounds run at
different times, e.g. when a shared machine is quiet, summarised together).

Case: a small CNN for 3x16x16 images (conv-relu-pool twice, then linear; fixed seed), traced to
TorchScript in target/bench_repeat/, on a batch of 16 images (float32, fixed seed), target class
0, 2 intra-op threads on both sides (torch.set_num_threads(2), OMP_NUM_THREADS=2):
- saliency: signed gradients (Captum `abs=False`, attrib's default);
- integrated-gradients: 50 steps, Gauss-Legendre, zero baseline (800 rows forward+backward);
- feature-ablation: 64 groups of 2x2 pixels shared by the three channels, zero baseline
  (1024 perturbed rows + 16 unperturbed); Captum at perturbations_per_eval 1 (its default) and at
  its best among 1, 4, 16, 64;
- occlusion: windows 3x4x4, strides 3x2x2 (49 windows, 784 perturbed rows + 16), zero
  baseline; Captum at perturbations_per_eval 1 and at its best among 1, 7, 49.

Both libraries run the TorchScript module of the same file on the same input file. Each of
ROUNDS rounds (default 5) runs, method after method, back to back:
- Captum in this process: the warm median of REPEAT calls (default 5) after one warm-up call;
- `attrib explain --device cpu ... --json --repeat REPEAT`: its `elapsed_ms` (median of the REPEAT
  warm calls, attribution only) and `first_ms` (the first call of the process), both after the
  model's load (`load_ms`) and one-row warm-up (`warm_up_ms`: TorchScript's first runs, the frozen
  copy for perturbation methods; see attrib::tensor::warm), which are reported apart; and the
  same with `--no-warm-up` for the first call without it;
- the floor: the bare forward (perturbation methods, no grad) or forward+backward (gradient
  methods) of the same rows as one batch, through the TorchScript module called from Python,
  warm median of REPEAT calls;
- whole processes, each timed from outside by its wall-clock time: a fresh Python process that
  imports torch and Captum, loads the model and input, attributes once (Captum's default
  perturbations_per_eval) and saves the result (it also reports its first call's time), and a
  fresh `attrib explain` process doing the same.
The script checks that both libraries' attributions agree (max abs difference over max abs
value) and prints, per method, the medians over the rounds: Captum warm (best ppe and ppe 1),
attrib warm, Captum/attrib (lowest and highest round in brackets), attrib's first-call overhead
(first_ms - warm median) with and without the warm-up (and in how many rounds the warm-up rehearsed
the job: `warm_up_steps`), the warm-up's time, the floor and
attrib/floor, the first call of a fresh Captum process, and both whole-process times.
The machines are shared and noisy (±20 % between runs): quote medians of several rounds.
"""
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "attrib"
OUT = ROOT / "target" / "bench_repeat"
MODEL = OUT / "small_cnn_3x16x16.pt"
INPUT = OUT / "x_16x3x16x16.npy"
THREADS = 2
TARGET = 0
STEPS = 50
WINDOW, STRIDES = (3, 4, 4), (3, 2, 2)
GRID = 2  # 2x2-pixel patches: 64 groups on 16x16
ENV = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}

# method -> (attrib flags, Captum perturbations_per_eval values to try (None: not a perturbation method))
METHODS = {
    "saliency": ([], None),
    "integrated-gradients": (["--steps", str(STEPS), "--quadrature", "gausslegendre", "--baseline", "zeros"], None),
    "feature-ablation": (["--feature-mask", f"grid:{GRID}x{GRID}", "--baseline", "zeros"], [1, 4, 16, 64]),
    "occlusion": (["--window", ",".join(map(str, WINDOW)), "--strides", ",".join(map(str, STRIDES)),
                   "--baseline", "zeros"], [1, 7, 49]),
}


from bench_models import SmallCNN, median_ms  # noqa: E402  (benches/ is the script's folder)


def make_files():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = SmallCNN(side=16).eval()
    x = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.jit.trace(model, x).save(str(MODEL))
    np.save(INPUT, x.numpy())


def grid_mask():
    r = torch.arange(16) // GRID
    return (r[:, None] * (16 // GRID) + r[None, :]).reshape(1, 1, 16, 16)


def captum_call(method, model, x, ppe=1):
    """A zero-argument function running Captum's `method` once (same settings as attrib's)."""
    from captum.attr import FeatureAblation, IntegratedGradients, Occlusion, Saliency

    if method == "saliency":
        s = Saliency(model)
        return lambda: s.attribute(x, target=TARGET, abs=False)
    if method == "integrated-gradients":
        ig = IntegratedGradients(model)
        return lambda: ig.attribute(x, baselines=0.0, target=TARGET, n_steps=STEPS, method="gausslegendre")
    if method == "feature-ablation":
        fa, mask = FeatureAblation(model), grid_mask()
        return lambda: fa.attribute(x, baselines=0.0, target=TARGET, feature_mask=mask, perturbations_per_eval=ppe)
    if method == "occlusion":
        oc = Occlusion(model)
        return lambda: oc.attribute(x, baselines=0.0, target=TARGET, sliding_window_shapes=WINDOW, strides=STRIDES,
                                    perturbations_per_eval=ppe)
    raise ValueError(method)


def floor_call(method, model, x):
    """The bare model work of the method's rows as one batch: forward+backward or forward."""
    n = x.shape[0]
    if method in ("saliency", "integrated-gradients"):
        if method == "saliency":
            rows = x.clone()
        else:
            alphas = torch.linspace(0.01, 0.99, STEPS).repeat_interleave(n).reshape(-1, 1, 1, 1)
            rows = x.repeat(STEPS, 1, 1, 1) * alphas

        def fwd_bwd():
            inp = rows.detach().requires_grad_()
            out = model(inp)
            return torch.autograd.grad(out[:, TARGET].sum(), inp)[0]

        return fwd_bwd, rows.shape[0]
    perturbations = 64 if method == "feature-ablation" else 49
    rows = x.repeat(perturbations + 1, 1, 1, 1)

    def fwd():
        with torch.no_grad():
            return model(rows)

    return fwd, rows.shape[0]


def attrib_cmd(method, out, repeat=None, warm_up=True):
    # --device cpu: Captum runs on the CPU too (`auto` also loads libtorch's CUDA backend to look
    # for a GPU, which costs the whole process time on a machine without one).
    cmd = [str(BIN), "explain", "--model", str(MODEL), "--input", str(INPUT), "--method", method, "--device", "cpu",
           "--target", str(TARGET), "--out", str(out), "--json", *METHODS[method][0]]
    return cmd + (["--repeat", str(repeat)] if repeat else []) + ([] if warm_up else ["--no-warm-up"])


def captum_once_cmd(method, out):
    return [sys.executable, str(pathlib.Path(__file__).resolve()), "--captum-once", method, str(out)]


def captum_once(method, out):
    """Fresh-process mode: what a user's Captum script does, once; prints the first call's time."""
    torch.set_num_threads(THREADS)
    model = torch.jit.load(str(MODEL)).eval()
    x = torch.from_numpy(np.load(INPUT))
    f = captum_call(method, model, x)
    t = time.perf_counter()
    attr = f()
    first = (time.perf_counter() - t) * 1e3
    np.save(out, attr.detach().numpy())
    print(json.dumps({"first_ms": first}))


def timed_process(cmd):
    t = time.perf_counter()
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=ENV)
    return (time.perf_counter() - t) * 1e3, json.loads(res.stdout.strip().splitlines()[-1])


def agreement(ours, theirs):
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30))


def one_round(method, model, x, repeat, reference):
    ppes = METHODS[method][1]
    captum = {ppe: median_ms(captum_call(method, model, x, ppe), repeat) for ppe in (ppes or [1])}
    best_ppe = min(captum, key=captum.get)
    _, ours = timed_process(attrib_cmd(method, OUT / f"attrib_{method}.npy", repeat))
    _, cold = timed_process(attrib_cmd(method, OUT / f"attrib_cold_{method}.npy", repeat, warm_up=False))
    f, rows = floor_call(method, model, x)
    floor = median_ms(f, repeat)
    captum_proc_ms, captum_first = timed_process(captum_once_cmd(method, OUT / f"captum_once_{method}.npy"))
    attrib_proc_ms, _ = timed_process(attrib_cmd(method, OUT / f"attrib_once_{method}.npy"))
    diff = agreement(np.load(OUT / f"attrib_{method}.npy"), reference)
    return {
        "method": method,
        "captum_warm_ms": round(captum[best_ppe], 3),
        "captum_best_ppe": best_ppe if ppes else None,
        "captum_ppe1_warm_ms": round(captum[1], 3),
        "captum_ms_by_ppe": {str(k): round(v, 3) for k, v in captum.items()} if ppes else None,
        "attrib_warm_ms": ours["elapsed_ms"],
        "attrib_first_ms": ours["first_ms"],
        "ratio": round(captum[best_ppe] / ours["elapsed_ms"], 3),
        "ratio_ppe1": round(captum[1] / ours["elapsed_ms"], 3),
        "first_overhead_ms": round(ours["first_ms"] - ours["elapsed_ms"], 3),
        "attrib_load_ms": round(ours["load_ms"], 3),
        "attrib_warm_up_ms": round(ours["warm_up_ms"], 3),
        "job_rehearsed": any(st.startswith("rehearse job:") for st in ours.get("warm_up_steps") or []),
        "cold_first_overhead_ms": round(cold["first_ms"] - cold["elapsed_ms"], 3),
        "floor_rows": rows,
        "floor_ms": round(floor, 3),
        "attrib_over_floor": round(ours["elapsed_ms"] / floor, 3),
        "captum_first_ms": round(captum_first["first_ms"], 3),
        "captum_process_ms": round(captum_proc_ms, 1),
        "attrib_process_ms": round(attrib_proc_ms, 1),
        "max_rel_diff": diff,
    }


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--captum-once":
        return captum_once(sys.argv[2], sys.argv[3])
    if len(sys.argv) > 1 and sys.argv[1] == "--summary":
        results = {m: [] for m in METHODS}
        for path in sys.argv[2:]:
            for line in open(path):
                if line.startswith("{"):
                    row = json.loads(line)
                    results[row["method"]].append(row)
        return summary(results)
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    if not BIN.exists():
        sys.exit(f"{BIN} is missing: cargo build --release -p attrib-cli")
    torch.set_num_threads(THREADS)
    make_files()
    model = torch.jit.load(str(MODEL)).eval()
    x = torch.from_numpy(np.load(INPUT))
    references = {m: captum_call(m, model, x)().detach().numpy() for m in METHODS}
    results = {m: [] for m in METHODS}
    for i in range(rounds):
        for method in METHODS:
            row = one_round(method, model, x, repeat, references[method])
            row["round"] = i
            row["repeat"] = repeat
            results[method].append(row)
            print(json.dumps(row), flush=True)
    summary(results)


def summary(results):
    results = {m: rows for m, rows in results.items() if rows}
    if not results:
        sys.exit("no rounds to summarise")
    med = lambda rows, k: statistics.median(r[k] for r in rows)
    rounds = len(next(iter(results.values())))
    repeat = next(iter(results.values()))[0].get("repeat", "?")
    print(f"\nsmall CNN 16x3x16x16, target {TARGET}, {THREADS} threads, medians of {rounds} rounds "
          f"(warm = median of {repeat} calls); times in ms")
    head = ("method", "Captum warm", "(ppe)", "Captum ppe=1", "attrib warm", "Captum/attrib", "attrib first-warm (job rehearsed in)",
            "(no warm-up)", "warm-up", "floor", "attrib/floor", "Captum 1st call", "Captum proc", "attrib proc",
            "max rel diff")
    print(" | ".join(head))
    for method, rows in results.items():
        ppes = [r["captum_best_ppe"] for r in rows]
        ppe = statistics.mode(ppes) if ppes[0] is not None else "-"
        cells = [method, f"{med(rows, 'captum_warm_ms'):.2f}", str(ppe), f"{med(rows, 'captum_ppe1_warm_ms'):.2f}",
                 f"{med(rows, 'attrib_warm_ms'):.2f}",
                 f"{med(rows, 'ratio'):.2f}x ({min(r['ratio'] for r in rows):.2f}-{max(r['ratio'] for r in rows):.2f})",
                 f"{med(rows, 'first_overhead_ms'):+.2f} ({sum(bool(r.get('job_rehearsed')) for r in rows)}/{len(rows)})",
                 f"{med(rows, 'cold_first_overhead_ms'):+.2f}",
                 f"{med(rows, 'attrib_warm_up_ms'):.2f}", f"{med(rows, 'floor_ms'):.2f} ({rows[0]['floor_rows']} rows)",
                 f"{med(rows, 'attrib_over_floor'):.2f}", f"{med(rows, 'captum_first_ms'):.1f}",
                 f"{med(rows, 'captum_process_ms'):.0f}", f"{med(rows, 'attrib_process_ms'):.0f}",
                 f"{max(r['max_rel_diff'] for r in rows):.1e}"]
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
