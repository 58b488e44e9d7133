"""Shapley value sampling and exact Shapley values: `attrib explain` against Captum 0.9, side by side.

Usage: python benches/side_by_side_shapley.py [ROUNDS] [REPEAT]
(from the repository root, with the project venv; builds nothing: run
`cargo build --release -p attrib-cli` first.)

Cases (2 intra-op threads on both sides, target class 0):
- svs-cnn: the shared SmallCNN (benches/bench_models.py, side 16, the file of
  side_by_side_repeat.py) on 16 images 3x16x16, 64 groups of 2x2 pixels shared by the channels,
  zero baseline, 25 permutations. Captum's ShapleyValueSampling at perturbations_per_eval 16,
  64 and 256 (the best is compared; 1 and 4 took 24.6 s and 15.5 s in a trial run, so they are
  left out); attrib with Captum's independent permutations
  (`sampler=random`) and with its default (antithetic);
- svs-mlp: the bundled breast-cancer MLP (30 features, each its own group) on its 8 rows,
  25 permutations; Captum at perturbations_per_eval 1, 5, 15 and 30;
- exact-cnn: attrib's exact Shapley values on the SmallCNN batch with 12 groups (patches of 4x6
  pixels: 4 x 3), 4096 coalitions per row. Captum has no exact method (its ShapleyValues would
  enumerate 12! permutations), so only attrib and the floor are timed.

Each of ROUNDS rounds (default 3) times, per case: Captum's warm median of REPEAT calls (default
5) after one warm-up call, in this process; `attrib explain --device cpu --json --repeat REPEAT`
(its `elapsed_ms`: median of the warm calls, attribution only); the floor, the bare forward
of attrib's model rows (`extra.model_rows`) from Python through the frozen, inference-optimised
module (`torch.jit.optimize_for_inference(torch.jit.freeze(...))`) in chunks of 256 or 1024 rows,
the faster (the plain module is several times slower on these shapes); and Captum once more on
that frozen module at its best perturbations_per_eval (the main comparison, like
side_by_side_repeat.py, gives both libraries the same TorchScript file; attrib itself runs a
frozen copy where its timing trial finds it faster). Both libraries estimate the same values from different random permutations, so results are
compared by their efficiency gap (the rows' attribution sums against F(x) - F(0)); equality
on the same permutations is tested in tests/shapley_parity.rs. Medians over the rounds are
printed last. The machines are shared and noisy: quote medians of several rounds.
"""
import json
import os
import pathlib
import statistics
import subprocess
import sys

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_models import median_ms  # noqa: E402
from side_by_side_repeat import INPUT as CNN_INPUT, MODEL as CNN_MODEL, make_files  # noqa: E402

BIN = ROOT / "target" / "release" / "attrib"
OUT = ROOT / "target" / "bench_shapley"
MLP_MODEL = ROOT / "examples" / "data" / "breast_cancer_mlp.pt"
MLP_INPUT = ROOT / "examples" / "data" / "breast_cancer.npy"
THREADS = 2
TARGET = 0
SAMPLES = 25


def cnn_mask(ph, pw):
    r, c = torch.arange(16) // ph, torch.arange(16) // pw
    return (r[:, None] * ((16 + pw - 1) // pw) + c[None, :]).reshape(1, 1, 16, 16)


# case -> (model file, input file, attrib flags, Captum feature mask, Captum ppe values (None: no Captum))
CASES = {
    "svs-cnn": (CNN_MODEL, CNN_INPUT, ["--method", "shapley-sampling", "--feature-mask", "grid:2x2"], lambda: cnn_mask(2, 2), [16, 64, 256]),
    "svs-mlp": (MLP_MODEL, MLP_INPUT, ["--method", "shapley-sampling"], lambda: None, [1, 5, 15, 30]),
    "exact-cnn": (CNN_MODEL, CNN_INPUT, ["--method", "exact-shapley", "--feature-mask", "grid:4x6"], lambda: cnn_mask(4, 6), None),
}


def attrib_run(case, extra, repeat):
    model, x, flags, _, _ = CASES[case]
    cmd = [str(BIN), "explain", "--model", str(model), "--input", str(x), "--device", "cpu", "--target", str(TARGET),
           "--baseline", "zeros", "--out", str(OUT / f"attrib_{case}.npy"), "--json", "--repeat", str(repeat), *flags, *extra]
    if "shapley-sampling" in flags:
        cmd += ["--samples", str(SAMPLES), "--seed", "0"]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(THREADS)})
    return json.loads(res.stdout.strip().splitlines()[-1])


def gap(model, x, attr, mask):
    """Largest |Σ_g φ_g − (F(x) − F(0))| over the rows, relative to the largest |F(x) − F(0)|."""
    with torch.no_grad():
        want = (model(x)[:, TARGET] - model(torch.zeros_like(x))[:, TARGET]).double()
    a = torch.as_tensor(attr).double()
    if mask is None:
        sums = a.flatten(1).sum(1)
    else:
        m = mask.expand_as(x).flatten(1)
        first = torch.stack([(m == g).double().argmax(1) for g in range(int(m.max()) + 1)], 1)
        sums = a.flatten(1).gather(1, first).sum(1)
    return float((sums - want).abs().max() / want.abs().max())


def one_round(case, repeat):
    model_file, x_file, _, mask_fn, ppes = CASES[case]
    model = torch.jit.load(str(model_file)).eval()
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.load(str(model_file)).eval()))
    x = torch.from_numpy(np.load(x_file))
    mask = mask_fn() if mask_fn else None
    row = {"case": case}
    if ppes:
        from captum.attr import ShapleyValueSampling

        svs = ShapleyValueSampling(model)
        times = {}
        for ppe in ppes:
            def call(ppe=ppe):
                torch.manual_seed(0)
                return svs.attribute(x, baselines=0.0, target=TARGET, feature_mask=mask, n_samples=SAMPLES,
                                     perturbations_per_eval=ppe)
            times[ppe] = median_ms(call, repeat)
        best = min(times, key=times.get)
        groups = int(mask.max()) + 1 if mask is not None else x[0].numel()
        row["captum_rows"] = (1 + SAMPLES * groups) * x.shape[0]
        row.update(captum_ms=round(times[best], 2), captum_ppe=best, captum_by_ppe={str(k): round(v, 2) for k, v in times.items()})
        torch.manual_seed(0)
        row["captum_gap"] = gap(model, x, svs.attribute(x, baselines=0.0, target=TARGET, feature_mask=mask, n_samples=SAMPLES), mask)
        variants = {"random": ["--param", "sampler=random"], "antithetic": []}
    else:
        variants = {"exact": []}
    for name, extra in variants.items():
        ours = attrib_run(case, extra, repeat)
        row[f"attrib_{name}_ms"] = ours["elapsed_ms"]
        row[f"attrib_{name}_first_ms"] = ours["first_ms"]
        row[f"attrib_{name}_rows"] = ours["extra"]["model_rows"]
        row[f"attrib_{name}_gap"] = gap(model, x, np.load(OUT / f"attrib_{case}.npy"), mask)
        if ppes:
            row[f"ratio_{name}"] = round(row["captum_ms"] / ours["elapsed_ms"], 2)
    rows = row[f"attrib_{next(iter(variants))}_rows"]
    reps = x.repeat(-(-rows // x.shape[0]), *[1] * (x.dim() - 1))[:rows]

    def floor(chunk):
        def run():
            with torch.no_grad():
                for c in reps.split(chunk):
                    frozen(c)
        return run

    row["floor_rows"] = rows
    row["floor_ms"] = round(min(median_ms(floor(c), repeat) for c in (256, 1024)), 2)
    if ppes:
        # Captum on the frozen, inference-optimised module (what attrib runs where it is faster).
        fsvs = ShapleyValueSampling(frozen)

        def call_frozen():
            torch.manual_seed(0)
            return fsvs.attribute(x, baselines=0.0, target=TARGET, feature_mask=mask, n_samples=SAMPLES, perturbations_per_eval=best)
        row["captum_frozen_ms"] = round(median_ms(call_frozen, repeat), 2)
    return row


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    if not BIN.exists():
        sys.exit(f"{BIN} is missing: cargo build --release -p attrib-cli")
    torch.set_num_threads(THREADS)
    OUT.mkdir(parents=True, exist_ok=True)
    if not CNN_MODEL.exists():
        make_files()
    results = {c: [] for c in CASES}
    for i in range(rounds):
        for case in CASES:
            row = one_round(case, repeat)
            row["round"] = i
            results[case].append(row)
            print(json.dumps(row), flush=True)
    med = lambda rows, k: statistics.median(r[k] for r in rows)
    print(f"\nmedians of {rounds} rounds (warm = median of {repeat} calls), {THREADS} threads, times in ms")
    print("case | Captum warm (best ppe) | Captum on the frozen module | attrib random | attrib antithetic / exact | Captum/attrib (random, antithetic) | model rows: attrib random, antithetic (Captum) | floor (attrib's rows) | efficiency gap attrib / Captum")
    for case, rows in results.items():
        if CASES[case][4]:
            print(f"{case} | {med(rows, 'captum_ms'):.1f} ({statistics.mode(r['captum_ppe'] for r in rows)}) | {med(rows, 'captum_frozen_ms'):.1f} | "
                  f"{med(rows, 'attrib_random_ms'):.1f} | {med(rows, 'attrib_antithetic_ms'):.1f} | "
                  f"{med(rows, 'ratio_random'):.1f}x, {med(rows, 'ratio_antithetic'):.1f}x | "
                  f"{rows[0]['attrib_random_rows']}, {rows[0]['attrib_antithetic_rows']} ({rows[0]['captum_rows']}) | {med(rows, 'floor_ms'):.1f} | "
                  f"{max(r['attrib_antithetic_gap'] for r in rows):.1e} / {max(r['captum_gap'] for r in rows):.1e}")
        else:
            print(f"{case} | - | - | - | {med(rows, 'attrib_exact_ms'):.1f} (first call {med(rows, 'attrib_exact_first_ms'):.1f}) | - | "
                  f"{rows[0]['attrib_exact_rows']} | {med(rows, 'floor_ms'):.1f} | {max(r['attrib_exact_gap'] for r in rows):.1e}")


if __name__ == "__main__":
    main()
