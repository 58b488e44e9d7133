"""Small deterministic PyTorch models shared by the fixtures, and helpers to save them.

Every model is built under a fixed seed, traced to TorchScript in eval mode and saved beside
its inputs, so the Rust tests and Captum see exactly the same function.
"""
import pathlib

import numpy as np
import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self, d_in=10, hidden=16, classes=3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, classes))

    def forward(self, x):
        return self.net(x)


class CNN(nn.Module):
    """Conv -> ReLU -> MaxPool -> Conv -> ReLU -> Linear, on [N, 1, 12, 12]."""

    def __init__(self, classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 8, 3)
        self.fc = nn.Linear(8 * 3 * 3, classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.flatten(1))


class TwoInput(nn.Module):
    """An image-like input and a tabular input, fused: f(a, b)."""

    def __init__(self, classes=3):
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.b = nn.Linear(4, 8)
        self.head = nn.Linear(8, classes)

    def forward(self, a, b):
        return self.head(torch.relu(self.a(a)) * torch.sigmoid(self.b(b)) + torch.relu(self.b(b)))


class WithExtraArg(nn.Module):
    """f(x, scale) = mlp(x) * scale[:, None]: `scale` is an additional forward argument."""

    def __init__(self):
        super().__init__()
        self.mlp = MLP()

    def forward(self, x, scale):
        return self.mlp(x) * scale.unsqueeze(1)


class ScalarOut(nn.Module):
    """One output per row: a regression head."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)


def build(cls, seed, *args, **kwargs):
    torch.manual_seed(seed)
    m = cls(*args, **kwargs).eval()
    for p in m.parameters():
        p.requires_grad_(True)
    return m


def save_traced(model, example, path: pathlib.Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    example = example if isinstance(example, tuple) else (example,)
    traced = torch.jit.trace(model, example)
    traced.save(str(path))
    return traced


def save_npy(path: pathlib.Path, t):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    np.save(str(path), a)


def save_npy64(path: pathlib.Path, t):
    """Like `save_npy`, but keeps float64 arrays in float64 (reference values of float64 runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    np.save(str(path), a)


def inputs(seed, *shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def standard_models():
    """The models every method family is compared on, with inputs and per-row targets.

    Returns a dict name -> (model, inputs tuple, extra args tuple or None, per-row targets).
    """
    out = {}
    out["mlp"] = (build(MLP, 1), (inputs(11, 8, 10),), None, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    out["cnn"] = (build(CNN, 2), (inputs(12, 6, 1, 12, 12),), None, torch.tensor([0, 4, 3, 2, 1, 0]))
    out["two_input"] = (build(TwoInput, 3), (inputs(13, 5, 6), inputs(14, 5, 4)), None, torch.tensor([2, 1, 0, 1, 2]))
    scale = torch.tensor([1.0, 2.0, 0.5, -1.0])
    out["extra_arg"] = (build(WithExtraArg, 4), (inputs(15, 4, 10),), (scale,), torch.tensor([1, 0, 2, 1]))
    out["scalar_out"] = (build(ScalarOut, 5), (inputs(16, 7, 5),), None, None)
    return out


def save_standard(out: pathlib.Path):
    """Save every standard model and its inputs under out/models/NAME/ (idempotent)."""
    for name, (model, xs, extra, targets) in standard_models().items():
        d = out / "models" / name
        example = xs + (extra if extra else ())
        save_traced(model, example, d / "model.pt")
        for i, x in enumerate(xs):
            save_npy(d / f"input{i}.npy", x)
        if extra:
            for i, e in enumerate(extra):
                save_npy(d / f"extra{i}.npy", e)
        if targets is not None:
            np.save(str(d / "targets.npy"), targets.numpy().astype(np.int64))
