"""Captum's LRP (default rules: EpsilonRule with epsilon 1e-9 on every covered layer), for
tests/lrp_parity.rs.

Every model is built from modules Captum's LRP has rules for (Linear, Conv2d, BatchNorm2d,
MaxPool2d, AvgPool2d, AdaptiveAvgPool2d; ReLU and Tanh passing relevance through), one module
per use, flattening functional (Captum has no rule for nn.Flatten). Everything runs in float64.

Writes under OUT/lrp/NAME/:
- model.pt           the traced model attrib loads
- input0.npy
- lrp0.npy, delta.npy   Captum's LRP(model).attribute(x, target, return_convergence_delta=True)
                        (Captum's delta is F_t(x) − Σ attr)
and OUT/lrp/cases.json: name -> {"target": t}.

Differences from Captum, under OUT/lrp/differences/:
- functional_tanh/: a tanh MLP calling torch.tanh (Captum cannot hook it: relevance goes through
  tanh's derivative) and its twin with nn.Tanh modules (same weights): model.pt is the functional
  one, captum_functional.npy and captum_twin.npy Captum's answers on each.
- reused_linear/: one nn.Linear called twice; Captum stops ("used more than once",
  captum_on_original.json); captum_twin.npy is Captum on a twin with one Linear per use.
- sigmoid/: an nn.Sigmoid Captum has no rule for (captum_on_original.json) and a product of two
  input-dependent tensors (gate.pt): both are errors in attrib.
- conv1d/: a bias-free Conv1d / AvgPool1d network: Captum has no default rule for these modules
  (captum_on_original.json); attrib applies the epsilon rule (relevance conserved).
"""
import copy
import json
import pathlib

import torch
import torch.nn as nn
from captum.attr import LRP

from models import inputs as randn
from models import save_npy64


class ReluMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))

    def forward(self, x):
        return self.net(x)


class TanhMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 3))

    def forward(self, x):
        return self.net(x)


class Cnn(nn.Module):
    """conv → relu → max-pool → conv → relu → avg-pool → adaptive avg-pool → linear."""

    def __init__(self):
        super().__init__()
        self.c1, self.r1, self.p1 = nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.c2, self.r2, self.p2 = nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2)
        self.p3 = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(6 * 2 * 2, 5)

    def forward(self, x):
        h = self.p1(self.r1(self.c1(x)))
        h = self.p3(self.p2(self.r2(self.c2(h))))
        return self.fc(torch.flatten(h, 1))


class BnCnn(nn.Module):
    """conv → batch norm → relu → max-pool → conv → batch norm → relu → adaptive avg-pool → linear."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1, self.r1, self.p1 = nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2)
        self.c2, self.b2, self.r2, self.p2 = nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        h = self.p1(self.r1(self.b1(self.c1(x))))
        h = self.p2(self.r2(self.b2(self.c2(h))))
        return self.fc(torch.flatten(h, 1))


class FunctionalTanh(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


class ModuleTanh(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.a, self.t, self.b = f.a, nn.Tanh(), f.b

    def forward(self, x):
        return self.b(self.t(self.a(x)))


class ReusedLinear(nn.Module):
    """One square Linear applied twice, with a ReLU between."""

    def __init__(self):
        super().__init__()
        self.inp, self.sq, self.r1, self.r2, self.out = nn.Linear(5, 6), nn.Linear(6, 6), nn.ReLU(), nn.ReLU(), nn.Linear(6, 2)

    def forward(self, x):
        h = self.r1(self.sq(self.inp(x)))
        return self.out(self.r2(self.sq(h)))


class ReusedTwin(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.inp, self.sq1, self.sq2, self.r1, self.r2, self.out = m.inp, m.sq, copy.deepcopy(m.sq), nn.ReLU(), nn.ReLU(), m.out

    def forward(self, x):
        h = self.r1(self.sq1(self.inp(x)))
        return self.out(self.r2(self.sq2(h)))


class Sigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 2))

    def forward(self, x):
        return self.net(x)


class Conv1dNet(nn.Module):
    """Bias-free conv1d → ReLU → AvgPool1d → linear: modules Captum's LRP has no rule for."""

    def __init__(self):
        super().__init__()
        self.c, self.r, self.p, self.fc = nn.Conv1d(2, 3, 3, bias=False), nn.ReLU(), nn.AvgPool1d(2), nn.Linear(3 * 4, 2, bias=False)

    def forward(self, x):
        return self.fc(torch.flatten(self.p(self.r(self.c(x))), 1))


class Gate(nn.Module):
    """relu(a(x)) · relu(b(x)): a product of two input-dependent tensors."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = nn.Linear(4, 5), nn.Linear(4, 5), nn.Linear(5, 2)

    def forward(self, x):
        return self.head(torch.relu(self.a(x)) * torch.relu(self.b(x)))


def build(cls, seed):
    torch.manual_seed(seed)
    m = cls().double().eval()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):  # non-trivial statistics and affine terms
            mod.running_mean.uniform_(-0.3, 0.3)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    return m


def captum(model, x, target):
    attr, delta = LRP(model).attribute(x.clone(), target=target, return_convergence_delta=True)
    return attr.detach(), delta.detach()


def error_report(model, x, target):
    try:
        LRP(model).attribute(x.clone(), target=target)
        return {"outcome": "returned"}
    except Exception as e:  # noqa: BLE001 — what Captum does is the point
        return {"outcome": "error", "type": type(e).__name__, "message": str(e).splitlines()[0][:300]}


def make(out: pathlib.Path):
    torch.set_default_dtype(torch.float64)
    try:
        root = out / "lrp"
        cases = {}
        for name, cls, seed, shape, target in [
            ("relu_mlp", ReluMlp, 81, (5, 10), 1),
            ("tanh_mlp", TanhMlp, 82, (5, 10), 2),
            ("cnn", Cnn, 83, (3, 2, 8, 8), 3),
            ("bn_cnn", BnCnn, 84, (3, 2, 10, 10), 0),
        ]:
            d = root / name
            d.mkdir(parents=True, exist_ok=True)
            m = build(cls, seed)
            x = randn(seed, *shape).double()
            torch.jit.trace(m, x).save(str(d / "model.pt"))
            save_npy64(d / "input0.npy", x)
            attr, delta = captum(m, x, target)
            save_npy64(d / "lrp0.npy", attr)
            save_npy64(d / "delta.npy", delta)
            cases[name] = {"target": target}
        (root / "cases.json").write_text(json.dumps(cases, indent=1))

        diff = root / "differences"
        d = diff / "functional_tanh"
        d.mkdir(parents=True, exist_ok=True)
        f = build(FunctionalTanh, 85)
        x = randn(85, 4, 6).double()
        torch.jit.trace(f, x).save(str(d / "model.pt"))
        save_npy64(d / "input0.npy", x)
        save_npy64(d / "captum_functional.npy", captum(f, x, 1)[0])
        save_npy64(d / "captum_twin.npy", captum(ModuleTanh(f).eval(), x, 1)[0])

        d = diff / "reused_linear"
        d.mkdir(parents=True, exist_ok=True)
        m = build(ReusedLinear, 86)
        x = randn(86, 4, 5).double()
        torch.jit.trace(m, x).save(str(d / "model.pt"))
        save_npy64(d / "input0.npy", x)
        (d / "captum_on_original.json").write_text(json.dumps(error_report(m, x, 0), indent=1))
        save_npy64(d / "captum_twin.npy", captum(ReusedTwin(m).eval(), x, 0)[0])

        d = diff / "sigmoid"
        d.mkdir(parents=True, exist_ok=True)
        m = build(Sigmoid, 87)
        x = randn(87, 3, 4).double()
        torch.jit.trace(m, x).save(str(d / "model.pt"))
        (d / "captum_on_original.json").write_text(json.dumps(error_report(m, x, 0), indent=1))
        torch.jit.trace(build(Gate, 88), x).save(str(d / "gate.pt"))

        d = diff / "conv1d"
        d.mkdir(parents=True, exist_ok=True)
        m = build(Conv1dNet, 89)
        x = randn(89, 3, 2, 10).double()
        torch.jit.trace(m, x).save(str(d / "model.pt"))
        save_npy64(d / "input0.npy", x)
        (d / "captum_on_original.json").write_text(json.dumps(error_report(m, x, 1), indent=1))
    finally:
        torch.set_default_dtype(torch.float32)
