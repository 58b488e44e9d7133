"""Captum's gradient methods on the standard models, for tests/gradient_parity.rs.

Writes under OUT/gradient/NAME/:
- ig_baseline{i}.npy                     baselines used for IG (per-row, batch-1 or full)
- ig_{rule}_{i}.npy, ig_{rule}_delta.npy IntegratedGradients, n_steps=50, every rule
- ixg_{i}.npy                             InputXGradient
- nt_{kind}_noise{i}.npy                  the noise fed to NoiseTunnel, copy-major [M*N, ...]
- nt_{kind}_{i}.npy (+ nt_ig_delta.npy)   NoiseTunnel over IG / Saliency / InputXGradient
- shap_dist{i}.npy, shap_index{i}.npy, shap_alpha.npy, shap_noise{i}.npy, shap_{i}.npy,
  shap_delta.npy                          GradientShap with its recorded draws (copy-major)
- shap_many_{i}.npy                       GradientShap with 2000 samples (statistical check, mlp)

Captum draws its own noise (torch.normal), baseline indices (np.random.choice) and path
coefficients (np.random.uniform) with the copies of a row adjacent (row i*M + s); the draws are
intercepted here and saved copy-major (row s*N + i), the layout attrib uses, so that the Rust
side can replay exactly the same draws.
"""
import pathlib

import numpy as np
import torch
from captum.attr import GradientShap, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency

from models import inputs as randn
from models import save_npy, save_standard, standard_models

RULES = ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]
NT_SAMPLES = 4
SHAP_SAMPLES = 3


def to_block(t, n, m):
    """Row i*m + s (Captum) -> row s*n + i (attrib)."""
    t = torch.as_tensor(t)
    return t.reshape(n, m, *t.shape[1:]).transpose(0, 1).reshape(n * m, *t.shape[1:])


def ig_baselines(name, xs):
    if name == "mlp":  # one baseline per row
        return (randn(21, *xs[0].shape) * 0.5,)
    if name == "cnn":  # one baseline shared by the batch
        return (randn(22, 1, *xs[0].shape[1:]) * 0.3,)
    if name == "two_input":
        return (torch.zeros_like(xs[0]), randn(23, 1, *xs[1].shape[1:]))
    return tuple(torch.zeros_like(x) for x in xs)


class PresetNoise:
    """Replace NoiseTunnel's Gaussian draws by given tensors (Captum layout), one per input."""

    def __init__(self, noises):
        self.noises = list(noises)
        self.orig = NoiseTunnel.__dict__["_add_noise_to_input"]

    def __enter__(self):
        it = iter(self.noises)
        NoiseTunnel._add_noise_to_input = staticmethod(lambda x, stdev, k: x.repeat_interleave(k, dim=0) + next(it))

    def __exit__(self, *exc):
        NoiseTunnel._add_noise_to_input = self.orig


class Recorder:
    """Record what np.random.choice / np.random.uniform return while Captum runs."""

    def __enter__(self):
        self.choice, self.uniform = np.random.choice, np.random.uniform
        self.choices, self.uniforms = [], []

        def choice(*a, **k):
            r = self.choice(*a, **k)
            self.choices.append(np.asarray(r))
            return r

        def uniform(*a, **k):
            r = self.uniform(*a, **k)
            self.uniforms.append(np.asarray(r))
            return r

        np.random.choice, np.random.uniform = choice, uniform
        return self

    def __exit__(self, *exc):
        np.random.choice, np.random.uniform = self.choice, self.uniform


def grads_tuple(xs):
    return tuple(x.clone().requires_grad_() for x in xs)


def make(out: pathlib.Path):
    save_standard(out)
    torch.manual_seed(0)
    np.random.seed(0)
    for name, (model, xs, extra, targets) in standard_models().items():
        d = out / "gradient" / name
        n = xs[0].shape[0]
        t = targets  # per-row targets (None for the scalar model)

        base = ig_baselines(name, xs)
        for i, b in enumerate(base):
            save_npy(d / f"ig_baseline{i}.npy", b)
        ig = IntegratedGradients(model)
        for rule in RULES:
            attr, delta = ig.attribute(
                grads_tuple(xs), baselines=base, target=t, additional_forward_args=extra,
                n_steps=50, method=rule, return_convergence_delta=True,
            )
            for i, a in enumerate(attr):
                save_npy(d / f"ig_{rule}_{i}.npy", a)
            save_npy(d / f"ig_{rule}_delta.npy", delta)

        attr = InputXGradient(model).attribute(grads_tuple(xs), target=t, additional_forward_args=extra)
        for i, a in enumerate(attr):
            save_npy(d / f"ixg_{i}.npy", a)

        if name not in ("mlp", "cnn", "two_input"):
            continue

        # NoiseTunnel with fixed noise, three wrapped methods and the three combinations.
        cases = {
            "ig": (IntegratedGradients(model), "smoothgrad", 0.3, dict(n_steps=20, baselines=base, return_convergence_delta=True)),
            "saliency": (Saliency(model), "smoothgrad_sq", 0.5, dict(abs=False)),
            "ixg": (InputXGradient(model), "vargrad", 0.5, {}),
        }
        for k, (method, kind, stdev, kwargs) in cases.items():
            noise = [randn(100 + 7 * j + len(k), n * NT_SAMPLES, *x.shape[1:]) * stdev for j, x in enumerate(xs)]
            for j, z in enumerate(noise):
                save_npy(d / f"nt_{k}_noise{j}.npy", to_block(z, n, NT_SAMPLES))
            with PresetNoise(noise):
                res = NoiseTunnel(method).attribute(
                    grads_tuple(xs), nt_type=kind, nt_samples=NT_SAMPLES, stdevs=stdev, target=t,
                    additional_forward_args=extra, **kwargs,
                )
            if k == "ig":
                res, delta = res
                save_npy(d / "nt_ig_delta.npy", to_block(delta, n, NT_SAMPLES).reshape(NT_SAMPLES, n))
            for i, a in enumerate(res):
                save_npy(d / f"nt_{k}_{i}.npy", a)

        # GradientShap with recorded draws.
        dist = tuple(randn(200 + j, 6, *x.shape[1:]) for j, x in enumerate(xs))
        noise = [randn(300 + j, n * SHAP_SAMPLES, *x.shape[1:]) * 0.1 for j, x in enumerate(xs)]
        with PresetNoise(noise), Recorder() as rec:
            attr, delta = GradientShap(model).attribute(
                grads_tuple(xs), baselines=dist, n_samples=SHAP_SAMPLES, stdevs=0.1, target=t,
                additional_forward_args=extra, return_convergence_delta=True,
            )
        assert len(rec.choices) == len(xs) and len(rec.uniforms) == 1, (len(rec.choices), len(rec.uniforms))
        for j, x in enumerate(xs):
            save_npy(d / f"shap_dist{j}.npy", dist[j])
            save_npy(d / f"shap_noise{j}.npy", to_block(noise[j], n, SHAP_SAMPLES))
            np.save(str(d / f"shap_index{j}.npy"), to_block(rec.choices[j], n, SHAP_SAMPLES).numpy().astype(np.int64))
        np.save(str(d / "shap_alpha.npy"), to_block(rec.uniforms[0], n, SHAP_SAMPLES).numpy().astype(np.float64))
        for i, a in enumerate(attr):
            save_npy(d / f"shap_{i}.npy", a)
        save_npy(d / "shap_delta.npy", to_block(delta, n, SHAP_SAMPLES).reshape(SHAP_SAMPLES, n))

        if name == "mlp":
            # In expectation: Captum's own draws, many samples.
            attr = GradientShap(model).attribute(grads_tuple(xs), baselines=dist, n_samples=2000, stdevs=0.1, target=t)
            for i, a in enumerate(attr):
                save_npy(d / f"shap_many_{i}.npy", a)
