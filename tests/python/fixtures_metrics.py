"""Captum's `infidelity` and `sensitivity_max` on the standard models, in float64 (issue 16).

Every perturbation function is wrapped so that what Captum drew is recorded and replayed on the
Rust side. Captum lays the copies out sample-major (`repeat_interleave`: row i*m + s), attrib
copy-major (row s*N + i); the records are reordered to attrib's layout, call by call (with
`max_examples_per_batch` Captum calls the function once per group of copies).

Writes OUT/metrics/cases.json and, per case, the arrays it names (float64): the attributions
(infidelity), the perturbations and perturbed inputs, and Captum's values per row.
"""
import json
import pathlib

import torch
from captum.attr import InputXGradient, IntegratedGradients, Saliency
from captum.metrics import infidelity, infidelity_perturb_func_decorator, sensitivity_max
from captum.metrics._core.sensitivity import default_perturb_func

from models import save_npy64, save_standard, standard_models


def copy_major(t, n):
    """[N*m, ...] sample-major -> [m*N, ...] copy-major."""
    m = t.shape[0] // n
    return t.reshape(n, m, *t.shape[1:]).transpose(0, 1).reshape(n * m, *t.shape[1:])


def joined(calls, n, k):
    """Input k of every recorded call, reordered and joined along the copies."""
    return torch.cat([copy_major(c[k], n) for c in calls], 0)


def make(out: pathlib.Path):
    save_standard(out)
    root = out / "metrics"
    root.mkdir(parents=True, exist_ok=True)
    models = standard_models()
    cases = []
    torch.manual_seed(0)

    def setup(name):
        model, xs, extra, targets = models[name]
        model = model.double()
        xs = tuple(x.double() for x in xs)
        extra = tuple(e.double() for e in extra) if extra else None
        return model, xs, extra, targets

    def save_list(prefix, ts):
        names = []
        for i, t in enumerate(ts):
            f = f"{prefix}_{i}.npy"
            save_npy64(root / f, t.detach())
            names.append(f)
        return names

    # Infidelity: (case, model, attribution method, multiply by inputs, baselines, normalize, max_examples_per_batch)
    infid_cases = [
        ("mlp_saliency", "mlp", "saliency", False, None, False, None),
        ("mlp_saliency_normalized", "mlp", "saliency", False, None, True, None),
        ("cnn_ig_baseline_chunked", "cnn", "ig", True, 0.25, False, 12),
        ("two_input_ixg", "two_input", "ixg", True, None, True, None),
        ("extra_arg_saliency", "extra_arg", "saliency", False, None, False, None),
        ("scalar_out_saliency", "scalar_out", "saliency", False, None, False, None),
    ]
    for case, name, method, mult, base, normalize, chunk in infid_cases:
        model, xs, extra, targets = setup(name)
        n = xs[0].shape[0]
        grads = tuple(x.clone().requires_grad_() for x in xs)
        if method == "saliency":
            attr = Saliency(model).attribute(grads, target=targets, abs=False, additional_forward_args=extra)
        elif method == "ixg":
            attr = InputXGradient(model).attribute(grads, target=targets, additional_forward_args=extra)
        else:
            attr = IntegratedGradients(model).attribute(grads, target=targets, additional_forward_args=extra, n_steps=8)
        attr = tuple(a.detach() for a in attr)
        calls = []
        if mult:
            @infidelity_perturb_func_decorator(True)
            def draw(inp, baselines=None):
                inp = inp if isinstance(inp, tuple) else (inp,)
                return tuple(x - 0.1 * torch.randn(x.shape, dtype=x.dtype) for x in inp)

            def perturb(inp, baselines=None):
                pert, perturbed = draw(inp, baselines) if baselines is not None else draw(inp)
                calls.append((pert, perturbed))
                return pert, perturbed
        else:
            def perturb(inp):
                inp = inp if isinstance(inp, tuple) else (inp,)
                noise = tuple(0.1 * torch.randn(x.shape, dtype=x.dtype) for x in inp)
                perturbed = tuple(x - e for x, e in zip(inp, noise))
                calls.append((noise, perturbed))
                return noise, perturbed
        with torch.no_grad():
            value = infidelity(model, perturb, xs, attr, baselines=base, additional_forward_args=extra, target=targets,
                               n_perturb_samples=10, max_examples_per_batch=chunk, normalize=normalize)
        k = len(xs)
        perts = [joined([c[0] for c in calls], n, i) for i in range(k)]
        perturbed = [joined([c[1] for c in calls], n, i) for i in range(k)]
        cases.append({
            "metric": "infidelity", "case": case, "model": name, "samples": 10, "normalize": normalize,
            "calls": len(calls), "attributions": save_list(f"{case}_attr", attr),
            "perturbations": save_list(f"{case}_pert", perts), "perturbed": save_list(f"{case}_perturbed", perturbed),
            "expected": save_list(f"{case}_value", [value])[0],
        })

    # Sensitivity-max: (case, model, method, radius, max_examples_per_batch); Captum's default
    # perturbation (uniform in the L-inf ball), recorded.
    sens_cases = [
        ("mlp_saliency", "mlp", "saliency", 0.02, None),
        ("cnn_saliency_chunked", "cnn", "saliency", 0.05, 18),
        ("two_input_ixg", "two_input", "ixg", 0.02, None),
        ("mlp_ig", "mlp", "ig", 0.1, None),
        ("scalar_out_saliency", "scalar_out", "saliency", 0.02, None),
    ]
    for case, name, method, radius, chunk in sens_cases:
        model, xs, extra, targets = setup(name)
        n = xs[0].shape[0]
        calls = []

        def perturb(inp, perturb_radius):
            res = default_perturb_func(inp, perturb_radius)
            calls.append(res)
            return res

        if method == "saliency":
            explain = Saliency(model).attribute  # abs=True, Captum's default
        elif method == "ixg":
            explain = InputXGradient(model).attribute
        else:
            ig = IntegratedGradients(model)

            def explain(inp, **kw):
                return ig.attribute(inp, n_steps=8, **kw)
        kw = {} if targets is None else {"target": targets}
        value = sensitivity_max(explain, xs, perturb_func=perturb, perturb_radius=radius, n_perturb_samples=10,
                                max_examples_per_batch=chunk, **kw)
        perturbed = [joined(calls, n, i) for i in range(len(xs))]
        spec = {"saliency": {"method": "saliency", "abs": True}, "ixg": {"method": "input-x-gradient"},
                "ig": {"method": "integrated-gradients", "n_steps": 8}}[method]
        cases.append({
            "metric": "sensitivity-max", "case": case, "model": name, "samples": 10, "calls": len(calls), "spec": spec,
            "perturbed": save_list(f"sens_{case}_perturbed", perturbed),
            "expected": save_list(f"sens_{case}_value", [value])[0],
        })
    (root / "cases.json").write_text(json.dumps({"cases": cases}, indent=1))
