"""Captum's LayerActivation, LayerGradientXActivation and LayerGradCam, for tests/layer_parity.rs.

Everything runs in float64 (models converted with .double() before export). Each model is saved
traced and scripted; attrib names the layer by its submodule path and Captum gets the module.

Writes under OUT/layer/NAME/:
- traced.pt, scripted.pt, input0.npy
- per case K (a layer, possibly its input): act_K.npy, gxa_K.npy, gxa_nomul_K.npy, cam_K.npy,
  cam_relu_K.npy (relu_attributions=True), cam_up_K.npy (Grad-CAM upsampled to the input size
  by LayerAttribution.interpolate, mode bilinear; layer outputs only)
and OUT/layer/cases.json: name -> {"target": t, "cases": {K: {"layer": path, "input": bool}}}.
OUT/layer/one_conv/traced.pt: a one-convolution model with known weights (the Grad-CAM closed
form in tests/layer_parity.rs).
"""
import json
import pathlib

import torch
import torch.nn as nn
import torchvision
from captum.attr import LayerActivation, LayerAttribution, LayerGradCam, LayerGradientXActivation

from models import inputs as randn
from models import save_npy64


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.Tanh()
        )
        self.head = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class OneConv(nn.Module):
    """conv (2 filters of ones, biases -50 and -75) -> relu -> view(-1, 8) -> linear -> relu."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, 1)
        self.relu1 = nn.ReLU()
        self.fc1 = nn.Linear(8, 4)
        self.relu2 = nn.ReLU()
        with torch.no_grad():
            self.conv1.weight.copy_(torch.ones(2, 1, 3, 3))
            self.conv1.bias.copy_(torch.tensor([-50.0, -75.0]))
            self.fc1.weight.copy_(torch.cat([torch.ones(4, 5), -torch.ones(4, 3)], dim=1))
            self.fc1.bias.zero_()

    def forward(self, x):
        x = self.relu1(self.conv1(x))
        return self.relu2(self.fc1(x.view(-1, 8)))


def module_at(model, path):
    return dict(model.named_modules())[path]


def run(out, name, model, x, target, layers):
    d = out / "layer" / name
    d.mkdir(parents=True, exist_ok=True)
    torch.jit.trace(model, x).save(str(d / "traced.pt"))
    torch.jit.script(model).save(str(d / "scripted.pt"))
    save_npy64(d / "input0.npy", x)
    cases = {}
    for key, path, to_input in layers:
        layer = module_at(model, path)
        kw = {"attribute_to_layer_input": to_input}
        save_npy64(d / f"act_{key}.npy", LayerActivation(model, layer).attribute(x, **kw))
        save_npy64(d / f"gxa_{key}.npy", LayerGradientXActivation(model, layer).attribute(x, target=target, **kw))
        nomul = LayerGradientXActivation(model, layer, multiply_by_inputs=False).attribute(x, target=target, **kw)
        save_npy64(d / f"gxa_nomul_{key}.npy", nomul)
        cam = LayerGradCam(model, layer).attribute(x, target=target, **kw)
        save_npy64(d / f"cam_{key}.npy", cam)
        relu = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True, **kw)
        save_npy64(d / f"cam_relu_{key}.npy", relu)
        if not to_input:
            save_npy64(d / f"cam_up_{key}.npy", LayerAttribution.interpolate(cam, x.shape[2:], "bilinear"))
        cases[key] = {"layer": path, "input": to_input}
    return {"target": target, "cases": cases}


def make(out: pathlib.Path):
    torch.set_default_dtype(torch.float64)
    try:
        all_cases = {}
        torch.manual_seed(81)
        m = SmallCnn().double().eval()
        x = randn(81, 3, 2, 8, 8).double()
        all_cases["cnn"] = run(
            out, "cnn", m, x, 2,
            [("f3", "features.3", False), ("f3_in", "features.3", True), ("features", "features", False)],
        )
        torch.manual_seed(82)
        r = torchvision.models.resnet18(num_classes=10).double().eval()
        for mod in r.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
        x = randn(82, 2, 3, 32, 32).double()
        all_cases["resnet18"] = run(
            out, "resnet18", r, x, 3, [("layer4", "layer4", False), ("l3_1_conv2", "layer3.1.conv2", False)]
        )
        (out / "layer" / "cases.json").write_text(json.dumps(all_cases, indent=1))
        d = out / "layer" / "one_conv"
        d.mkdir(parents=True, exist_ok=True)
        one = OneConv().eval()
        torch.jit.trace(one.double(), torch.zeros(1, 1, 4, 4)).save(str(d / "traced.pt"))
    finally:
        torch.set_default_dtype(torch.float32)
