"""Captum's ShapleyValueSampling and ShapleyValues on the standard models, in float64.

ShapleyValueSampling runs Captum's own code path, permutations included (`torch.randperm` from a
seeded generator): its permutation generator is wrapped so that every permutation it draws is
recorded, and the Rust side replays them (`ShapleyValueSamplingParams::permutations`).
ShapleyValues (Captum's exact method: every permutation of the groups) is the reference of
attrib's exact Shapley values; cases have at most 5 groups (120 permutations).

Both run on `model.double()` and `x.double()`. Captum creates its running totals with
`dtype=torch.float` whatever the model's dtype, which rounds every marginal contribution to
float32 (up to ~1e-6 of the largest value after ShapleyValues' 120 permutations); `torch.zeros`
is wrapped during the calls so that float32 requests become float64, leaving Captum's arithmetic
otherwise as it is. Writes OUT/shapley/cases.json and the arrays it names.
"""
import copy
import json
import pathlib

import numpy as np
import torch
from captum.attr import ShapleyValues, ShapleyValueSampling

from models import save_npy64, save_standard, standard_models

# Masks as in the other fixtures (ids 0..G-1).
MASKS = {
    "mlp": lambda: (torch.arange(10).reshape(1, 10) // 2,),
    # 2 x 2 patches of 6 x 6 pixels.
    "cnn": lambda: ((torch.arange(12)[:, None] // 6 * 2 + torch.arange(12)[None, :] // 6).reshape(1, 1, 12, 12),),
    # Group 2 spans both inputs.
    "two_input": lambda: (torch.tensor([[0, 0, 1, 1, 2, 2]]), torch.tensor([[2, 3, 3, 4]])),
    "extra_arg": lambda: (torch.arange(10).reshape(1, 10) // 2,),
    # One mask per row for the scalar-output model (5 features of 7 rows, 3 groups).
    "scalar_out": lambda: (torch.tensor([[0, 0, 1, 2, 2], [0, 1, 1, 2, 2], [2, 0, 1, 0, 1], [0, 1, 2, 0, 1],
                                         [1, 1, 0, 2, 0], [0, 0, 0, 1, 2], [2, 2, 1, 0, 0]]),),
}
# (model, mask case, baseline, n_samples of the sampling run)
CASES = [
    ("mlp", "mask", 0.5, 7),
    ("mlp", "nomask", 0.0, 3),
    ("cnn", "mask", 0.0, 6),
    ("two_input", "mask", -0.3, 5),
    ("extra_arg", "mask", 0.0, 4),
    ("scalar_out", "mask", 0.25, 6),
    ("scalar_out", "nomask", 0.0, 5),
]


def recording(gen, store):
    def rec(num_features, num_samples):
        for p in gen(num_features, num_samples):
            store.append(list(p))
            yield p

    return rec


class Float64Totals:
    """Within the block, `torch.zeros(..., dtype=torch.float32)` makes float64 zeros."""

    def __enter__(self):
        self.zeros = torch.zeros

        def zeros(*args, dtype=None, **kwargs):
            return self.zeros(*args, dtype=torch.float64 if dtype == torch.float32 else dtype, **kwargs)

        torch.zeros = zeros

    def __exit__(self, *exc):
        torch.zeros = self.zeros


def make(out: pathlib.Path):
    save_standard(out)
    root = out / "shapley"
    root.mkdir(parents=True, exist_ok=True)
    cases = []
    models = standard_models()
    for k, (name, mask_case, baseline, n_samples) in enumerate(CASES):
        model, xs, extra, targets = models[name]
        model = copy.deepcopy(model).double()
        xs = tuple(x.double() for x in xs)
        extra = None if extra is None else tuple(e.double() for e in extra)
        masks = MASKS[name]() if mask_case == "mask" else None
        baselines = tuple([baseline] * len(xs))
        stem = f"{name}_{mask_case}"
        entry = dict(model=name, mask=mask_case, baseline=baseline, n_samples=n_samples)

        perms = []
        svs = ShapleyValueSampling(model)
        svs.permutation_generator = recording(svs.permutation_generator, perms)
        torch.manual_seed(2000 + k)
        with Float64Totals():
            attr = svs.attribute(xs, baselines=baselines, target=targets, additional_forward_args=extra,
                                 feature_mask=masks, n_samples=n_samples, perturbations_per_eval=4)
        assert len(perms) == n_samples and all(a.dtype == torch.float64 for a in attr)
        np.save(str(root / f"{stem}_perms.npy"), np.array(perms, dtype=np.int64))
        entry["permutations"] = f"{stem}_perms.npy"
        entry["sampling"] = []
        for i, a in enumerate(attr):
            f = f"{stem}_sampling{i}.npy"
            save_npy64(root / f, a)
            entry["sampling"].append(f)

        groups = int(max(int(m.max()) for m in masks) + 1) if masks is not None else sum(x[0].numel() for x in xs)
        if groups <= 5:
            with Float64Totals():
                exact = ShapleyValues(model).attribute(xs, baselines=baselines, target=targets, additional_forward_args=extra,
                                                       feature_mask=masks, perturbations_per_eval=8)
            assert all(a.dtype == torch.float64 for a in exact)
            entry["exact"] = []
            for i, a in enumerate(exact):
                f = f"{stem}_exact{i}.npy"
                save_npy64(root / f, a)
                entry["exact"].append(f)
        if masks is not None:
            entry["masks"] = []
            for i, m in enumerate(masks):
                f = f"{stem}_mask{i}.npy"
                np.save(str(root / f), m.numpy().astype(np.int64))
                entry["masks"].append(f)
        cases.append(entry)
    (root / "cases.json").write_text(json.dumps(cases, indent=1))


if __name__ == "__main__":
    import sys

    make(pathlib.Path(sys.argv[1]))
