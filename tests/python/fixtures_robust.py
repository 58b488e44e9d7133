"""Captum's FGSM, PGD and MinParamPerturbation on small TorchScript models (issue 16).

Models (under OUT/robust/MODEL/): `mlp_softmax` (the standard MLP with a softmax head: its
outputs are probabilities, so Captum's default loss -log(p[target]) is the cross-entropy),
`cnn_softmax` (the standard CNN with a softmax head) and `cnn` (the standard CNN, logits).
Captum runs with its default loss on the softmax models, and with
`loss_func = cross_entropy(reduction="none")` on the logits model (what attrib's `auto` loss
picks there); `mlp_logits` (the MLP without softmax) is attacked with Captum's default loss
too, to record what -log of logits does.

Writes OUT/robust/cases.json (one entry per case: model, attack, parameters, the adversarial
file) and the arrays it names; PGD random start: Captum's success rate over 20 torch seeds.
"""
import json
import pathlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.robust import FGSM, PGD, MinParamPerturbation

from models import CNN, MLP, build, inputs, save_npy, save_traced


class Softmax(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.softmax(self.inner(x), dim=1)


def ce_loss(out, target):
    return F.cross_entropy(out, target, reduction="none")


def models():
    mlp = build(MLP, 21)
    cnn = build(CNN, 22)
    x_mlp = inputs(31, 12, 10)
    x_cnn = inputs(32, 8, 1, 12, 12)
    return {
        "mlp_softmax": (Softmax(mlp).eval(), x_mlp, None),
        "mlp_logits": (mlp, x_mlp, None),
        "cnn_softmax": (Softmax(cnn).eval(), x_cnn, None),
        "cnn": (cnn, x_cnn, ce_loss),
    }


def labels_of(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def make(out: pathlib.Path):
    root = out / "robust"
    cases = []
    ms = models()
    for name, (model, x, _) in ms.items():
        d = root / name
        save_traced(model, x, d / "model.pt")
        save_npy(d / "input.npy", x)
        np.save(str(d / "labels.npy"), labels_of(model, x).numpy().astype(np.int64))

    def record(name, attack, params, adv, loss):
        f = f"{name}_{len(cases)}.npy"
        save_npy(root / f, adv)
        cases.append({"model": name, "attack": attack, "loss": loss, "adversarial": f, **params})

    for name in ("mlp_softmax", "cnn_softmax", "cnn", "mlp_logits"):
        model, x, loss_func = ms[name]
        loss = "cross-entropy" if loss_func is not None else "neg-log-prob"
        y = labels_of(model, x)
        classes = model(x[:1]).shape[1]
        to = (y + 1) % classes
        # FGSM: untargeted, targeted, bounded, masked.
        fgsm = FGSM(model, loss_func)
        record(name, "fgsm", {"epsilon": 0.1, "targeted": False, "target": "labels"}, fgsm.perturb(x, 0.1, y), loss)
        if name == "mlp_logits":
            continue
        record(name, "fgsm", {"epsilon": 0.07, "targeted": True, "target": "next"}, fgsm.perturb(x, 0.07, to, targeted=True), loss)
        bounded = FGSM(model, loss_func, lower_bound=-1.0, upper_bound=1.0)
        record(name, "fgsm", {"epsilon": 0.2, "targeted": False, "target": "labels", "bounds": [-1.0, 1.0]}, bounded.perturb(x, 0.2, y), loss)
        mask = (torch.arange(x[0].numel()).reshape(x[0].shape) % 3 != 0).float().unsqueeze(0)
        save_npy(root / f"{name}_mask.npy", mask)
        record(name, "fgsm", {"epsilon": 0.1, "targeted": False, "target": "labels", "mask": f"{name}_mask.npy"}, fgsm.perturb(x, 0.1, y, mask=mask), loss)
        # PGD without random start: L-inf and L2, untargeted and targeted, bounded.
        pgd = PGD(model, loss_func)
        for norm, radius, step, steps in (("Linf", 0.1, 0.02, 7), ("L2", 0.8, 0.05, 6)):
            adv = pgd.perturb(x, radius, step, steps, y, norm=norm)
            record(name, "pgd", {"epsilon": radius, "step_size": step, "step_num": steps, "norm": norm, "targeted": False, "target": "labels"}, adv, loss)
            adv = pgd.perturb(x, radius, step, steps, to, targeted=True, norm=norm)
            record(name, "pgd", {"epsilon": radius, "step_size": step, "step_num": steps, "norm": norm, "targeted": True, "target": "next"}, adv, loss)
        pgd_b = PGD(model, loss_func, lower_bound=-0.5, upper_bound=1.5)
        adv = pgd_b.perturb(x, 0.1, 0.03, 5, y, norm="Linf", mask=mask)
        record(name, "pgd", {"epsilon": 0.1, "step_size": 0.03, "step_num": 5, "norm": "Linf", "targeted": False, "target": "labels",
                             "bounds": [-0.5, 1.5], "mask": f"{name}_mask.npy"}, adv, loss)

    # PGD with a random start (L-inf): Captum's success rate over torch seeds, on a larger batch.
    model = ms["cnn_softmax"][0]
    x = inputs(33, 64, 1, 12, 12)
    y = labels_of(model, x)
    save_npy(root / "random_start_input.npy", x)
    np.save(str(root / "random_start_labels.npy"), y.numpy().astype(np.int64))
    pgd = PGD(model)
    rates = []
    for seed in range(20):
        torch.manual_seed(seed)
        adv = pgd.perturb(x, 0.15, 0.05, 3, y, random_start=True, norm="Linf")
        rates.append(float((labels_of(model, adv) != y).float().mean()))
    random_start = {"epsilon": 0.15, "step_size": 0.05, "step_num": 3, "rates": rates}

    # MinParamPerturbation over FGSM's epsilon, one row at a time (Captum answers per batch).
    model, x, _ = ms["mlp_softmax"]
    y = labels_of(model, x)
    fgsm = FGSM(model)
    min_param = {}
    for mode in ("linear", "binary"):
        mp = MinParamPerturbation(model, fgsm, "epsilon", 0.0, 1.0, 0.01, mode=mode)
        found = []
        for i in range(x.shape[0]):
            adv, value = mp.evaluate(x[i : i + 1], target=y[i : i + 1], attack_kwargs={"target": y[i : i + 1]})
            found.append(value)
        min_param[mode] = found

    (root / "cases.json").write_text(json.dumps({"cases": cases, "random_start": random_start, "min_param": min_param}, indent=1))
