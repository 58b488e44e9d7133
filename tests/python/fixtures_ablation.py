"""Captum's FeatureAblation, Occlusion and FeaturePermutation on the standard models.

Writes OUT/ablation/cases.json (one entry per case: method, model, target, masks, baseline,
window/strides, permutations, output files) and the arrays it names, so the Rust parity test is
driven by data. Feature permutation uses permutations drawn here and saved (one per feature group,
in increasing group id), replayed in Captum through `perm_func`.

Every case is computed twice: as is (float32, `outputs`) and with the model and inputs in float64
(`model.double()`, `x.double()`, references saved as float64 in `outputs64`). The float64 run lets
the Rust side check 1e-5 parity whatever its chunking: in float32 an ablation is a difference of
two nearly equal outputs, and the rounding that differs between batch sizes shows at ~1e-4.
"""
import copy
import json
import pathlib

import numpy as np
import torch
from captum._utils.common import _format_feature_mask, _get_feature_idx_to_tensor_idx
from captum.attr import FeatureAblation, FeaturePermutation, Occlusion

from models import save_npy, save_npy64, save_standard, standard_models

# Feature masks per model (one per input), shaped to broadcast to the inputs.
MASKS = {
    "mlp": lambda xs: (torch.arange(10).reshape(1, 10) // 3,),
    "cnn": lambda xs: ((torch.arange(12)[:, None] // 4 * 3 + torch.arange(12)[None, :] // 4).reshape(1, 1, 12, 12),),
    # Group 2 spans both inputs: ablated / permuted jointly.
    "two_input": lambda xs: (torch.tensor([[0, 0, 1, 1, 2, 2]]), torch.tensor([[2, 3, 3, 4]])),
    "extra_arg": lambda xs: (torch.arange(10).reshape(1, 10) // 2,),
    "scalar_out": lambda xs: (torch.tensor([[0, 0, 1, 1, 2]]),),
}

# A mask per row (dim 0 = N) for the CNN: random ids 0..5 on 3x3 blocks, different per row.
def cnn_row_mask(n):
    g = torch.Generator().manual_seed(99)
    coarse = torch.randint(0, 6, (n, 1, 4, 4), generator=g)
    return (coarse.repeat_interleave(3, dim=2).repeat_interleave(3, dim=3),)

# Occlusion windows and strides per model (one per input); None strides = Captum's default 1.
WINDOWS = {
    "mlp": [((3,), (2,)), ((4,), None)],
    "cnn": [((1, 4, 4), (1, 2, 2)), ((1, 3, 3), None), ((1, 5, 5), (1, 3, 4))],
    "two_input": [(((2,), (3,)), ((2,), (1,)))],
    "extra_arg": [((4,), (3,))],
    "scalar_out": [((2,), None)],
}


def targets_of(targets):
    return {"none": None} if targets is None else {"class0": 0, "per_row": targets}


def draw_perms(n, groups, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(groups):
        while True:
            p = torch.randperm(n, generator=g)
            if not torch.equal(p, torch.arange(n)):
                break
        out.append(p)
    return torch.stack(out) if out else torch.zeros(0, n, dtype=torch.long)


def replaying_perm_func(perms_by_feature, masks, inputs):
    """A perm_func that replays `perms_by_feature[feature]` in Captum's call order (one call per
    feature and per input tensor holding it, perturbations_per_eval=1)."""
    fmt = _format_feature_mask(masks, tuple(inputs))
    order = []
    for feature, tensors in _get_feature_idx_to_tensor_idx(fmt).items():
        for _ in sorted(tensors):
            order.append(perms_by_feature[feature])
    calls = iter(order)

    def perm(x, mask):
        p = next(calls)
        return x[p] * mask.to(x.dtype) + x * mask.bitwise_not().to(x.dtype)

    return perm


def make(out: pathlib.Path):
    save_standard(out)
    root = out / "ablation"
    cases = []

    def save_case(method, name, case, tname, attr, attr64, **extra):
        files, files64 = [], []
        for i, (a, a64) in enumerate(zip(attr, attr64)):
            # Captum's Occlusion divides by the window counts after `.float()`, so its float64 run
            # returns float32: every cancellation happened in float64, only the final value is
            # rounded (<= 6e-8 relative). Feature ablation and permutation stay float64.
            assert a64.dtype == (torch.float32 if method == "occlusion" else torch.float64), (method, a64.dtype)
            f = f"{method}/{name}/{case}_{tname}_{i}.npy"
            save_npy(root / f, a)
            files.append(f)
            f64 = f"{method}/{name}/{case}_{tname}_{i}_f64.npy"
            save_npy64(root / f64, a64)
            files64.append(f64)
        cases.append(dict(method=method, model=name, case=case, target=tname, outputs=files, outputs64=files64,
                          **extra))

    def save_masks(method, name, case, masks):
        files = []
        for i, m in enumerate(masks):
            f = f"{method}/{name}/mask_{case}_{i}.npy"
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            np.save(str(root / f), m.numpy().astype(np.int64))
            files.append(f)
        return files

    for name, (model, xs, extra, targets) in standard_models().items():
        n = xs[0].shape[0]
        model64 = copy.deepcopy(model).double()
        xs64 = tuple(x.double() for x in xs)
        extra64 = None if extra is None else tuple(e.double() for e in extra)
        mask_cases = {"nomask": None, "mask": MASKS[name](xs)}
        if name == "cnn":
            mask_cases["rowmask"] = cnn_row_mask(n)
        for tname, t in targets_of(targets).items():
            # Feature ablation: zeros without a mask, 0.5 with one.
            fa, fa64 = FeatureAblation(model), FeatureAblation(model64)
            for case, masks in mask_cases.items():
                baseline = 0.0 if masks is None else 0.5
                attr = fa.attribute(tuple(xs), baselines=tuple([baseline] * len(xs)), target=t, feature_mask=masks,
                                    additional_forward_args=extra)
                attr64 = fa64.attribute(xs64, baselines=tuple([baseline] * len(xs)), target=t, feature_mask=masks,
                                        additional_forward_args=extra64)
                mfiles = None if masks is None else save_masks("feature_ablation", name, case, masks)
                save_case("feature_ablation", name, case, tname, attr, attr64, masks=mfiles, baseline=baseline)

            # Occlusion.
            oc, oc64 = Occlusion(model), Occlusion(model64)
            for k, (window, strides) in enumerate(WINDOWS[name]):
                multi = isinstance(window[0], tuple)
                windows = list(window) if multi else [window]
                stride_list = None if strides is None else (list(strides) if multi else [strides])
                baseline = 0.0 if k % 2 == 0 else -0.3
                kw = dict(baselines=tuple([baseline] * len(xs)), target=t,
                          sliding_window_shapes=tuple(windows) if multi else windows[0],
                          strides=None if stride_list is None else (tuple(stride_list) if multi else stride_list[0]))
                attr = oc.attribute(tuple(xs), additional_forward_args=extra, **kw)
                attr64 = oc64.attribute(xs64, additional_forward_args=extra64, **kw)
                save_case("occlusion", name, f"w{k}", tname, attr, attr64, baseline=baseline,
                          window=[list(w) for w in windows],
                          strides=None if stride_list is None else [list(s) for s in stride_list])

            # Feature permutation with saved permutations.
            for case, masks in mask_cases.items():
                fmt = _format_feature_mask(masks, tuple(xs))
                features = sorted(_get_feature_idx_to_tensor_idx(fmt).keys())
                perms = draw_perms(n, len(features), seed=len(cases) + 7)
                by_feature = {f: perms[j] for j, f in enumerate(features)}
                fp = FeaturePermutation(model, perm_func=replaying_perm_func(by_feature, masks, xs))
                attr = fp.attribute(tuple(xs), target=t, feature_mask=masks, additional_forward_args=extra)
                fp64 = FeaturePermutation(model64, perm_func=replaying_perm_func(by_feature, masks, xs64))
                attr64 = fp64.attribute(xs64, target=t, feature_mask=masks, additional_forward_args=extra64)
                mfiles = None if masks is None else save_masks("feature_permutation", name, case, masks)
                pfile = f"feature_permutation/{name}/perms_{case}_{tname}.npy"
                (root / pfile).parent.mkdir(parents=True, exist_ok=True)
                np.save(str(root / pfile), perms.numpy().astype(np.int64))
                save_case("feature_permutation", name, case, tname, attr, attr64, masks=mfiles, perms=pfile)

    (root / "cases.json").write_text(json.dumps(cases, indent=1))
