"""Captum's KernelShap and Lime on the standard models, with the coalitions Captum drew.

For every case Captum runs first on row 0 alone, with its own sampler wrapped so that every
interpretable sample it draws is recorded (KernelShap: the all-ones and all-zeros samples, then
the kernel draws; Lime: `default_perturb_func`'s fair coin flips), from a seeded torch
generator. Captum then runs on the whole batch with a perturbation function that replays those
samples for every row, so row 0's answer is Captum's own unreplayed answer and the other rows
use the same coalitions (attrib shares one set of coalitions across the batch). The samples are
saved as int64 `[n_samples, G]` (columns = interpretable feature ids 0..G-1) and replayed on the
Rust side through `KernelShapParams::coalitions` / `LimeParams::coalitions`.

Writes OUT/kernel/cases.json and the arrays it names.
"""
import json
import pathlib
import warnings

import numpy as np
import torch
from captum.attr import KernelShap, Lime
from captum.attr._core.lime import default_perturb_func

from models import save_npy, save_standard, standard_models

# (model, mask case, baseline, n_samples); masks as in fixtures_ablation (ids 0..G-1).
MASKS = {
    "mlp": lambda: (torch.arange(10).reshape(1, 10) // 2,),
    "cnn": lambda: ((torch.arange(12)[:, None] // 4 * 3 + torch.arange(12)[None, :] // 4).reshape(1, 1, 12, 12),),
    # Group 2 spans both inputs.
    "two_input": lambda: (torch.tensor([[0, 0, 1, 1, 2, 2]]), torch.tensor([[2, 3, 3, 4]])),
    "extra_arg": lambda: (torch.arange(10).reshape(1, 10) // 2,),
    "scalar_out": lambda: None,
}
CASES = [
    ("mlp", "nomask", 0.0, 60),
    ("mlp", "mask", 0.5, 40),
    ("cnn", "mask", 0.0, 50),
    ("two_input", "mask", -0.3, 40),
    ("extra_arg", "mask", 0.0, 30),
    ("scalar_out", "nomask", 0.0, 24),
]


def recording_generator(gen_func, store):
    """A generator perturb_func yielding what `gen_func` yields, and recording it."""

    def rec(original_inp, **kwargs):
        for s in gen_func(original_inp, **kwargs):
            store.append(s.detach().clone().cpu())
            yield s

    return rec


def recording_func(func, store):
    def rec(original_inp, **kwargs):
        s = func(original_inp, **kwargs)
        store.append(s.detach().clone().cpu())
        return s

    return rec


def replaying(samples):
    """A generator perturb_func that yields `samples` (one `[1, G]` tensor each) in order; Captum
    calls it once per row, so every row gets the same samples."""

    def replay(original_inp, **kwargs):
        for s in samples:
            yield s.clone()

    return replay


def row(t, i):
    return t[i:i + 1]


def make(out: pathlib.Path):
    # Captum warns that a batch trains one surrogate per row: that is what is compared.
    warnings.filterwarnings("ignore", message="You are providing multiple inputs")
    save_standard(out)
    root = out / "kernel"
    root.mkdir(parents=True, exist_ok=True)
    cases = []
    models = standard_models()
    for k, (name, mask_case, baseline, n_samples) in enumerate(CASES):
        model, xs, extra, targets = models[name]
        masks = MASKS[name]() if mask_case == "mask" else None
        target = targets  # per-row targets (None for the scalar-output model)
        baselines = tuple([baseline] * len(xs))
        for method in ("kernel_shap", "lime"):
            drawn = []
            if method == "kernel_shap":
                explainer = KernelShap(model)
                explainer.perturb_func = recording_generator(explainer.perturb_func, drawn)
            else:
                explainer = Lime(model, perturb_func=recording_func(default_perturb_func, drawn))
            torch.manual_seed(1000 + k)
            row0 = explainer.attribute(
                tuple(row(x, 0) for x in xs),
                baselines=baselines,
                target=None if target is None else target[:1],
                additional_forward_args=None if extra is None else tuple(row(e, 0) for e in extra),
                feature_mask=masks,
                n_samples=n_samples,
                perturbations_per_eval=16,
            )
            assert len(drawn) == n_samples, (name, method, len(drawn))
            if method == "kernel_shap":
                replay = KernelShap(model)
            else:
                replay = Lime(model)
            replay.perturb_func = replaying(drawn)
            attr = replay.attribute(
                tuple(xs),
                baselines=baselines,
                target=target,
                additional_forward_args=extra,
                feature_mask=masks,
                n_samples=n_samples,
                perturbations_per_eval=16,
            )
            # Row 0 of the replayed run is Captum's own run.
            for a, r0 in zip(attr, row0):
                assert torch.allclose(a[:1], r0, rtol=1e-5, atol=1e-6), (name, method)
            z = torch.cat(drawn).long()
            stem = f"{method}/{name}_{mask_case}"
            zf = f"{stem}_coalitions.npy"
            (root / zf).parent.mkdir(parents=True, exist_ok=True)
            np.save(str(root / zf), z.numpy().astype(np.int64))
            files = []
            for i, a in enumerate(attr):
                f = f"{stem}_attr{i}.npy"
                save_npy(root / f, a)
                files.append(f)
            mfiles = None
            if masks is not None:
                mfiles = []
                for i, m in enumerate(masks):
                    f = f"{stem}_mask{i}.npy"
                    np.save(str(root / f), m.numpy().astype(np.int64))
                    mfiles.append(f)
            cases.append(dict(method=method, model=name, mask=mask_case, baseline=baseline, n_samples=n_samples,
                              coalitions=zf, outputs=files, masks=mfiles))
    (root / "cases.json").write_text(json.dumps(cases, indent=1))


if __name__ == "__main__":
    import sys

    make(pathlib.Path(sys.argv[1]))
