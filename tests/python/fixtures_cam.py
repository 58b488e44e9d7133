"""GuidedGradCam and LayerDeepLift from Captum 0.9, and Score-CAM computed here by a plain loop,
for tests/cam_parity.rs.

Everything runs in float64. attrib loads each model traced and scripted (`traced.pt`,
`scripted.pt`); Captum runs on the eager module, or for ResNet-18 on a twin with the same weights
and one ReLU module per use (`fixtures_deeplift.resnet_twin`), since Captum's hooks cannot handle
torchvision's BasicBlock calling one ReLU module twice.

Score-CAM has no Captum oracle. `score_cam_loop` below computes it the slow, obvious way, one
row and one channel at a time (Wang et al. 2020: each activation map upsampled, min-max
normalised, used as a mask, the masked input's softmax probability or logit as the channel's
weight, relu of the weighted sum of maps, upsampled), independently of attrib's batched code.

Writes under OUT/cam/NAME/: traced.pt, scripted.pt, input0.npy, baseline0.npy, and per case K:
ggc_K.npy (GuidedGradCam), ldl_K.npy + ldl_delta_K.npy (LayerDeepLift), sc_K.npy (Score-CAM);
OUT/cam/cases.json describes every case (layer, options). OUT/cam/closed/traced.pt: the
Score-CAM closed-form model (see tests/cam_parity.rs).
"""
import json
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from captum.attr import GuidedGradCam, LayerDeepLift

from fixtures_deeplift import resnet_twin
from models import inputs as randn
from models import save_npy64


class Cnn(nn.Module):
    """conv/relu/max-pool, conv/relu, linear: one ReLU module per use (Captum's hooks see all)."""

    def __init__(self):
        super().__init__()
        self.c1, self.r1, self.p1 = nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.c2, self.r2 = nn.Conv2d(6, 5, 3, padding=1), nn.ReLU()
        self.fc = nn.Linear(5 * 4 * 4, 4)

    def forward(self, x):
        h = self.p1(self.r1(self.c1(x)))
        return self.fc(self.r2(self.c2(h)).flatten(1))


class Closed(nn.Module):
    """A 1x1 convolution with weights 2 and -1 (no bias) on a one-channel image; the output is
    the sum of channel 0 only: the model ignores channel 1."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1, 1))

    def forward(self, x):
        return self.conv(x)[:, 0].flatten(1).sum(1, keepdim=True)


def module_at(model, path):
    return dict(model.named_modules())[path]


def activations(model, layer, x, to_input=False):
    seen = []
    hook = layer.register_forward_hook(lambda m, i, o: seen.append((i[0] if to_input else o).detach()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        hook.remove()
    return seen[0]


def score_cam_loop(model, layer, x, target, score="softmax", baseline=None, mode="bilinear", upsample=True, to_input=False):
    """Score-CAM, row by row, each channel's mask made on its own (the row's masked inputs run as one batch)."""
    acts = activations(model, layer, x, to_input)
    size = x.shape[2:]
    align = False if mode == "bilinear" else None
    rows = []
    for i in range(x.shape[0]):
        b = torch.zeros_like(x[i]) if baseline is None else baseline[i]
        t = target[i] if isinstance(target, list) else target
        masked, kept = [], []
        for k in range(acts.shape[1]):
            a = acts[i, k]
            if a.max() == a.min():
                continue  # a constant map has no normalisation: no mask, no weight
            up = F.interpolate(a[None, None], size=size, mode=mode, align_corners=align)[0, 0]
            mask = (up - up.min()) / (up.max() - up.min())
            masked.append(b + (x[i] - b) * mask)
            kept.append(k)
        cam = torch.zeros(acts.shape[2:], dtype=x.dtype)
        if kept:
            with torch.no_grad():
                out = model(torch.stack(masked))  # the row's masked inputs in one batch
            scores = torch.softmax(out, 1)[:, t] if score == "softmax" else out[:, t]
            for w, k in zip(scores, kept):
                cam = cam + w * acts[i, k]
        cam = torch.relu(cam)[None, None]
        if upsample:
            cam = F.interpolate(cam, size=size, mode=mode, align_corners=align)
        rows.append(cam[0])
    return torch.stack(rows)


def export(d, model, x):
    d.mkdir(parents=True, exist_ok=True)
    torch.jit.trace(model, x).save(str(d / "traced.pt"))
    torch.jit.script(model).save(str(d / "scripted.pt"))


def run(out, name, model, captum_model, x, b, target, ggc, ldl, sc):
    d = out / "cam" / name
    export(d, model, x)
    save_npy64(d / "input0.npy", x)
    save_npy64(d / "baseline0.npy", b)
    cases = {"target": target, "ggc": {}, "ldl": {}, "sc": {}}
    for key, path, to_input, mode in ggc:
        layer = module_at(captum_model, path)
        attr = GuidedGradCam(captum_model, layer).attribute(x, target=target, interpolate_mode=mode, attribute_to_layer_input=to_input)
        save_npy64(d / f"ggc_{key}.npy", attr)
        cases["ggc"][key] = {"layer": path, "input": to_input, "mode": mode}
    for key, path, to_input, mul, compat in ldl:
        layer = module_at(captum_model, path)
        attr, delta = LayerDeepLift(captum_model, layer, multiply_by_inputs=mul).attribute(
            x, baselines=b, target=target, return_convergence_delta=True, attribute_to_layer_input=to_input
        )
        save_npy64(d / f"ldl_{key}.npy", attr)
        save_npy64(d / f"ldl_delta_{key}.npy", delta)
        cases["ldl"][key] = {"layer": path, "input": to_input, "multiply": mul, "compat": compat}
    for key, path, kw in sc:
        kw = dict(kw)
        use_baseline = kw.pop("baseline", False)
        rows = kw.pop("rows", x.shape[0])  # the first rows only (ResNet-18: 256 forwards per row)
        attr = score_cam_loop(model, module_at(model, path), x[:rows], target, baseline=b[:rows] if use_baseline else None, **kw)
        save_npy64(d / f"sc_{key}.npy", attr)
        cases["sc"][key] = {"layer": path, "baseline": use_baseline, **kw}
    return cases


def make(out: pathlib.Path):
    torch.set_default_dtype(torch.float64)
    try:
        all_cases = {}
        torch.manual_seed(91)
        m = Cnn().double().eval()
        with torch.no_grad():
            # A dead channel: constant at c2 (-0.5) and at r2 (0), a map Score-CAM must skip.
            m.c2.weight[0] = 0.0
            m.c2.bias[0] = -0.5
        x = randn(91, 3, 2, 8, 8).double()
        b = randn(92, 3, 2, 8, 8).double() * 0.3
        all_cases["cnn"] = run(
            out, "cnn", m, m, x, b, 2,
            ggc=[("c2", "c2", False, "nearest"), ("c2_bil", "c2", False, "bilinear"), ("c2_in", "c2", True, "nearest"),
                 ("c1", "c1", False, "nearest")],
            # c1's output reaches a max-pool right after a ReLU: Captum's hooks drop the pool's rule
            # there (attrib's captum_compat reproduces it).
            ldl=[("c2", "c2", False, True, False), ("c2_in", "c2", True, True, False), ("c2_nomul", "c2", False, False, False),
                 ("c1_compat", "c1", False, True, True)],
            sc=[("c2", "c2", {}), ("r2", "r2", {}), ("c2_logit", "c2", {"score": "logit"}),
                ("c2_near", "c2", {"mode": "nearest"}), ("c2_base", "c2", {"baseline": True}),
                ("c2_small", "c2", {"upsample": False}), ("p1", "p1", {}), ("c2_in", "c2", {"to_input": True})],
        )
        torch.manual_seed(93)
        r = torchvision.models.resnet18(num_classes=10).double().eval()
        for mod in r.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
        twin = resnet_twin(r)
        x = randn(93, 2, 3, 32, 32).double()
        b = randn(94, 2, 3, 32, 32).double() * 0.1
        all_cases["resnet18"] = run(
            out, "resnet18", r, twin, x, b, 1,  # a class with a positive Grad-CAM at layer3 and layer4
            ggc=[("layer4", "layer4", False, "nearest"), ("layer3", "layer3", False, "bilinear")],
            ldl=[("layer4", "layer4", False, True, False), ("layer4_in", "layer4", True, True, False),
                 ("l3_1_conv2", "layer3.1.conv2", False, True, False)],
            sc=[("layer3", "layer3", {"rows": 1})],
        )
        (out / "cam" / "cases.json").write_text(json.dumps(all_cases, indent=1))
        d = out / "cam" / "closed"
        d.mkdir(parents=True, exist_ok=True)
        torch.jit.trace(Closed().double().eval(), torch.zeros(1, 1, 3, 4)).save(str(d / "traced.pt"))
    finally:
        torch.set_default_dtype(torch.float32)
