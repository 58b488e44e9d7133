"""Captum's DeepLift, DeepLiftShap, GuidedBackprop and Deconvolution, for tests/deeplift_parity.rs.

Every model here is built so that Captum's module hooks see it correctly: one activation module
per use, none in place, no functional activations. Everything runs in float64 (models converted
with .double() before tracing), so the comparison does not depend on float32 rounding.

Writes under OUT/deeplift/NAME/:
- model.pt               the traced model attrib loads (for `resnet18`: torchvision's own ResNet-18,
                         whose BasicBlocks call one in-place ReLU module twice)
- input{i}.npy, baseline{i}.npy, shap_samples{i}.npy
- dl{i}.npy, dl_delta.npy          DeepLift (multiply_by_inputs=True), target `target`
- dl_nomul{i}.npy                  DeepLift(multiply_by_inputs=False) (mlp only)
- shap{i}.npy, shap_delta.npy      DeepLiftShap over the samples (cnn only)
- gb{i}.npy, dc{i}.npy             GuidedBackprop, Deconvolution
and OUT/deeplift/cases.json: name -> {"inputs": k, "target": t, "shap": bool, "nomul": bool}.

For `resnet18`, Captum runs on a twin with the same weights and one ReLU module per use (the
answer it would give if its hooks could see every use); what Captum does on the original is
written to OUT/deeplift/resnet18/captum_on_original.json.
"""
import json
import pathlib

import torch
import torch.nn as nn
import torchvision
from captum.attr import Deconvolution, DeepLift, DeepLiftShap, GuidedBackprop

from models import inputs as randn
from models import save_npy64


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


class Cnn(nn.Module):
    """Two conv/ReLU/max-pool stages; the second pool overlaps (kernel 3, stride 2)."""

    def __init__(self):
        super().__init__()
        self.c1, self.r1, self.p1 = nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.c2, self.r2, self.p2 = nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2)
        self.fc = nn.Linear(6 * 2 * 2, 5)

    def forward(self, x):
        h = self.p1(self.r1(self.c1(x)))
        h = self.p2(self.r2(self.c2(h)))
        return self.fc(h.flatten(1))


class Pool1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.c, self.r, self.p = nn.Conv1d(2, 3, 3), nn.ReLU(), nn.MaxPool1d(2)
        self.fc = nn.Linear(3 * 4, 2)

    def forward(self, x):
        return self.fc(self.p(self.r(self.c(x))).flatten(1))


class SigmoidSoftmax(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 8), nn.Sigmoid(), nn.Linear(8, 4), nn.Softmax(dim=1))

    def forward(self, x):
        return self.net(x)


class TwoInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.ra = nn.Linear(6, 8), nn.ReLU()
        self.b, self.rb = nn.Linear(4, 8), nn.ELU()
        self.head = nn.Linear(8, 3)

    def forward(self, a, b):
        return self.head(self.ra(self.a(a)) + self.rb(self.b(b)))


class TwinBlock(nn.Module):
    """torchvision's BasicBlock with one ReLU module per use, not in place."""

    def __init__(self, block):
        super().__init__()
        self.conv1, self.bn1, self.conv2, self.bn2, self.downsample = block.conv1, block.bn1, block.conv2, block.bn2, block.downsample
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


def resnet_twin(original):
    import copy

    twin = copy.deepcopy(original)
    twin.relu = nn.ReLU()
    for layer in (twin.layer1, twin.layer2, twin.layer3, twin.layer4):
        for i in range(len(layer)):
            layer[i] = TwinBlock(layer[i])
    return twin.eval()


class Normed(nn.Module):
    """A layer norm: not covered by the DeepLIFT rules (an error naming it and its source)."""

    def __init__(self):
        super().__init__()
        self.lin, self.norm, self.head = nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.norm(torch.relu(self.lin(x))))


def build(cls, seed):
    torch.manual_seed(seed)
    return cls().double().eval()


def write(d: pathlib.Path, stem: str, ts):
    for i, t in enumerate(ts):
        save_npy64(d / f"{stem}{i}.npy", t)


def run_case(out, name, traced_from, captum_model, xs, bs, target, shap_samples=None, nomul=False):
    d = out / "deeplift" / name
    d.mkdir(parents=True, exist_ok=True)
    torch.jit.trace(traced_from, xs).save(str(d / "model.pt"))
    write(d, "input", xs)
    write(d, "baseline", bs)
    single = len(xs) == 1
    arg = xs[0] if single else xs
    barg = bs[0] if single else bs
    as_tuple = lambda a: (a,) if single else a  # noqa: E731
    attr, delta = DeepLift(captum_model).attribute(arg, baselines=barg, target=target, return_convergence_delta=True)
    write(d, "dl", as_tuple(attr))
    save_npy64(d / "dl_delta.npy", delta)
    if nomul:
        attr = DeepLift(captum_model, multiply_by_inputs=False).attribute(arg, baselines=barg, target=target)
        write(d, "dl_nomul", as_tuple(attr))
    if shap_samples is not None:
        write(d, "shap_samples", shap_samples)
        sarg = shap_samples[0] if single else shap_samples
        attr, delta = DeepLiftShap(captum_model).attribute(arg, baselines=sarg, target=target, return_convergence_delta=True)
        write(d, "shap", as_tuple(attr))
        save_npy64(d / "shap_delta.npy", delta)
    write(d, "gb", as_tuple(GuidedBackprop(captum_model).attribute(arg, target=target)))
    write(d, "dc", as_tuple(Deconvolution(captum_model).attribute(arg, target=target)))
    return {"inputs": len(xs), "target": target, "shap": shap_samples is not None, "nomul": nomul}


def make(out: pathlib.Path):
    torch.set_default_dtype(torch.float64)
    try:
        cases = {}
        x = randn(61, 4, 10).double()
        m = build(Mlp, 61)
        cases["mlp"] = run_case(out, "mlp", m, m, (x,), (randn(62, 4, 10).double() * 0.3,), 1, nomul=True)

        m = build(Cnn, 63)
        x = randn(63, 3, 2, 10, 10).double()
        samples = (randn(64, 3, 2, 10, 10).double() * 0.5,)
        cases["cnn"] = run_case(out, "cnn", m, m, (x,), (randn(65, 1, 2, 10, 10).double() * 0.2,), 2, shap_samples=samples)

        m = build(Pool1d, 66)
        cases["pool1d"] = run_case(out, "pool1d", m, m, (randn(66, 3, 2, 10).double(),), (torch.zeros(3, 2, 10),), 0)

        m = build(SigmoidSoftmax, 67)
        cases["sigmoid_softmax"] = run_case(out, "sigmoid_softmax", m, m, (randn(67, 3, 6).double(),), (torch.zeros(3, 6),), 2)

        m = build(TwoInput, 68)
        xs = (randn(68, 3, 6).double(), randn(69, 3, 4).double())
        bs = (torch.zeros(3, 6), randn(70, 3, 4).double() * 0.1)
        cases["two_input"] = run_case(out, "two_input", m, m, xs, bs, 0)

        torch.manual_seed(71)
        original = torchvision.models.resnet18(num_classes=10).double().eval()
        # Non-trivial batch-norm statistics (a fresh model has mean 0, variance 1).
        for mod in original.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
        twin = resnet_twin(original)
        x = randn(72, 2, 3, 32, 32).double()
        cases["resnet18"] = run_case(out, "resnet18", original, twin, (x,), (torch.zeros(2, 3, 32, 32),), 3)
        d = out / "deeplift" / "resnet18"
        reference = torch.from_numpy(__import__("numpy").load(d / "dl0.npy"))
        try:
            own = DeepLift(original).attribute(x, baselines=torch.zeros_like(x), target=3)
            report = {"outcome": "returned", "max_abs_difference_from_twin": float((own - reference).abs().max()),
                      "max_abs_twin": float(reference.abs().max())}
        except Exception as e:  # noqa: BLE001 — what Captum does is the point
            report = {"outcome": "error", "type": type(e).__name__, "message": str(e).splitlines()[0][:300]}
        (d / "captum_on_original.json").write_text(json.dumps(report, indent=1))
        (out / "deeplift" / "cases.json").write_text(json.dumps(cases, indent=1))
        d = out / "deeplift" / "uncovered"
        d.mkdir(parents=True, exist_ok=True)
        m = build(Normed, 73)
        torch.jit.trace(m, torch.zeros(2, 4)).save(str(d / "traced.pt"))
        torch.jit.script(m).save(str(d / "scripted.pt"))
    finally:
        torch.set_default_dtype(torch.float32)
