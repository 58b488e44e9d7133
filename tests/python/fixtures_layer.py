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

The path and neuron methods (LayerIntegratedGradients, LayerConductance, NeuronGradient,
NeuronIntegratedGradients) write OUT/layer/path_cases.json: name -> {"target": t, "cases":
[case...]}, each case {"key", "method", "layer", "input", "kwargs", "neuron"?} with its result in
OUT/layer/NAME/path_KEY.npy (and the convergence delta in path_KEY_delta.npy where the method has
one). OUT/layer/text/: a small embedding + convolution text classifier (traced and scripted)
on int64 token ids (stored in input0.npy as float64; 0 is the pad id); OUT/layer/text_bag/: an
EmbeddingBag (mean) classifier.
"""
import json
import pathlib

import torch
import torch.nn as nn
import torchvision
from captum.attr import (
    LayerActivation,
    LayerAttribution,
    LayerConductance,
    LayerGradCam,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    NeuronGradient,
    NeuronIntegratedGradients,
)

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


class TextCnn(nn.Module):
    """Embedding (vocabulary 40, 6 dimensions, pad id 0) -> Conv1d -> ReLU -> max over time -> Linear."""

    def __init__(self, vocab=40, dim=6, classes=3):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.conv = nn.Conv1d(dim, 5, 3, padding=1)
        self.head = nn.Linear(5, classes)

    def forward(self, ids):
        e = self.embedding(ids).transpose(1, 2)
        return self.head(torch.relu(self.conv(e)).amax(dim=2))


class TextBag(nn.Module):
    """EmbeddingBag (vocabulary 30, 5 dimensions, mean of the tokens) -> tanh -> Linear."""

    def __init__(self, vocab=30, dim=5, classes=3):
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, dim, mode="mean")
        self.head = nn.Linear(dim, classes)

    def forward(self, ids):
        return self.head(torch.tanh(self.bag(ids)))


PATH_METHODS = {
    "lig": lambda m, l, kw: LayerIntegratedGradients(m, l, multiply_by_inputs=kw.pop("multiply_by_inputs", True)),
    "cond": lambda m, l, kw: LayerConductance(m, l),
    "ng": lambda m, l, kw: NeuronGradient(m, l),
    "nig": lambda m, l, kw: NeuronIntegratedGradients(m, l, multiply_by_inputs=kw.pop("multiply_by_inputs", True)),
}


def run_path(out, name, model, x, target, cases):
    """Captum's path and neuron methods on the model saved by run() (or saved here)."""
    d = out / "layer" / name
    written = []
    for case in cases:
        key, method, path, to_input = case["key"], case["method"], case["layer"], case["input"]
        kw = dict(case.get("kwargs", {}))
        if "baseline" in case:
            kw["baselines"] = torch.full_like(x, case["baseline"])
        algo = PATH_METHODS[method](model, module_at(model, path), kw)
        if method in ("ng", "nig"):
            r = algo.attribute(x, neuron_selector=tuple(case["neuron"]), attribute_to_neuron_input=to_input, **kw)
        else:
            r = algo.attribute(x, target=target, attribute_to_layer_input=to_input, return_convergence_delta=True, **kw)
            r, delta = r
            save_npy64(d / f"path_{key}_delta.npy", delta)
        save_npy64(d / f"path_{key}.npy", r)
        written.append(case)
    return {"target": target, "cases": written}


def cnn_path_cases():
    cases = []
    for key, path, to_input in [("f3", "features.3", False), ("f3_in", "features.3", True), ("f0", "features.0", False)]:
        cases.append({"key": f"lig_{key}", "method": "lig", "layer": path, "input": to_input})
        cases.append({"key": f"cond_{key}", "method": "cond", "layer": path, "input": to_input})
    cases += [
        {"key": "lig_f3_mid", "method": "lig", "layer": "features.3", "input": False, "baseline": 0.3,
         "kwargs": {"n_steps": 20, "method": "riemann_middle", "multiply_by_inputs": False}},
        {"key": "cond_f3_right", "method": "cond", "layer": "features.3", "input": False, "baseline": -0.2,
         "kwargs": {"n_steps": 16, "method": "riemann_right"}},
        {"key": "ng_f3", "method": "ng", "layer": "features.3", "input": False, "neuron": [2, 1, 3]},
        {"key": "ng_f3_in", "method": "ng", "layer": "features.3", "input": True, "neuron": [1, 0, 2]},
        {"key": "nig_f3", "method": "nig", "layer": "features.3", "input": False, "neuron": [4, 3, 0]},
        {"key": "nig_f0", "method": "nig", "layer": "features.0", "input": False, "neuron": [3, 5, 6], "baseline": 0.1,
         "kwargs": {"n_steps": 24}},
        {"key": "nig_head", "method": "nig", "layer": "head", "input": False, "neuron": [1],
         "kwargs": {"multiply_by_inputs": False}},
    ]
    return cases


def resnet_path_cases():
    cases = []
    for key, path, neuron in [("layer4", "layer4", [5, 0, 0]), ("l3_1_conv2", "layer3.1.conv2", [3, 1, 1])]:
        cases.append({"key": f"lig_{key}", "method": "lig", "layer": path, "input": False})
        cases.append({"key": f"cond_{key}", "method": "cond", "layer": path, "input": False, "kwargs": {"n_steps": 20}})
        cases.append({"key": f"ng_{key}", "method": "ng", "layer": path, "input": False, "neuron": neuron})
        cases.append({"key": f"nig_{key}", "method": "nig", "layer": path, "input": False, "neuron": neuron, "kwargs": {"n_steps": 20}})
    return cases


def make_text(out):
    """The text model: layer IG at the embedding (pad-id baseline) and at the convolution."""
    torch.manual_seed(83)
    m = TextCnn().double().eval()
    g = torch.Generator().manual_seed(83)
    ids = torch.randint(1, 40, (3, 7), generator=g)
    ids[2, 5:] = 0  # padded row
    d = out / "layer" / "text"
    d.mkdir(parents=True, exist_ok=True)
    torch.jit.trace(m, ids).save(str(d / "traced.pt"))
    torch.jit.script(m).save(str(d / "scripted.pt"))
    save_npy64(d / "input0.npy", ids.double())
    cases = [
        {"key": "lig_emb", "method": "lig", "layer": "embedding", "input": False},
        {"key": "lig_emb_pad", "method": "lig", "layer": "embedding", "input": False,
         "kwargs": {"n_steps": 30, "method": "riemann_left"}},
        {"key": "lig_conv", "method": "lig", "layer": "conv", "input": False},
        {"key": "lig_conv_in", "method": "lig", "layer": "conv", "input": True, "kwargs": {"multiply_by_inputs": False}},
    ]
    for c in cases:
        kw = dict(c.get("kwargs", {}))
        algo = PATH_METHODS["lig"](m, module_at(m, c["layer"]), kw)
        r, delta = algo.attribute(ids, baselines=torch.zeros_like(ids), target=1, attribute_to_layer_input=c["input"],
                                  return_convergence_delta=True, **kw)
        save_npy64(d / f"path_{c['key']}.npy", r)
        save_npy64(d / f"path_{c['key']}_delta.npy", delta)
    return {"target": 1, "cases": cases}


def make_text_bag(out):
    """The bag-of-embeddings model: layer IG at the EmbeddingBag (pad-id baseline)."""
    torch.manual_seed(84)
    m = TextBag().double().eval()
    ids = torch.randint(0, 30, (4, 6), generator=torch.Generator().manual_seed(84))
    d = out / "layer" / "text_bag"
    d.mkdir(parents=True, exist_ok=True)
    torch.jit.trace(m, ids).save(str(d / "traced.pt"))
    torch.jit.script(m).save(str(d / "scripted.pt"))
    save_npy64(d / "input0.npy", ids.double())
    cases = [{"key": "lig_bag", "method": "lig", "layer": "bag", "input": False}]
    r, delta = LayerIntegratedGradients(m, m.bag).attribute(ids, baselines=torch.zeros_like(ids), target=2,
                                                            return_convergence_delta=True)
    save_npy64(d / "path_lig_bag.npy", r)
    save_npy64(d / "path_lig_bag_delta.npy", delta)
    return {"target": 2, "cases": cases}


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
        path_cases = {"cnn": run_path(out, "cnn", m, x, 2, cnn_path_cases())}
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
        path_cases["resnet18"] = run_path(out, "resnet18", r, x, 3, resnet_path_cases())
        path_cases["text"] = make_text(out)
        path_cases["text_bag"] = make_text_bag(out)
        (out / "layer" / "path_cases.json").write_text(json.dumps(path_cases, indent=1))
        (out / "layer" / "cases.json").write_text(json.dumps(all_cases, indent=1))
        d = out / "layer" / "one_conv"
        d.mkdir(parents=True, exist_ok=True)
        one = OneConv().eval()
        torch.jit.trace(one.double(), torch.zeros(1, 1, 4, 4)).save(str(d / "traced.pt"))
    finally:
        torch.set_default_dtype(torch.float32)
