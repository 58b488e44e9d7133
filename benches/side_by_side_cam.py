"""Guided Grad-CAM and Score-CAM of `attrib explain` on torchvision's ResNet-18 at 224x224,
against Captum 0.9 (Guided Grad-CAM; Captum has no Score-CAM) and the floor (Score-CAM: one attrib call after the first, one floor run).

    python benches/side_by_side_cam.py [ROWS] [REPEAT]      (after `make build`; defaults 2, 3)

ResNet-18 (random weights, 1000 classes), ROWS random 3x224x224 rows, target class 0, layer4,
float32, 2 threads everywhere. attrib runs the traced model through `attrib explain --json
--repeat REPEAT` (`elapsed_ms`: median of the warm calls; `first_ms`: the first call). Captum
runs `GuidedGradCam` on the eager twin with one ReLU module per use (its hooks cannot handle
torchvision's reused ReLU), median of REPEAT calls after one warm-up. Floors, from Python, on
the traced model: Guided Grad-CAM needs at least two forward + backward passes of the rows (one
ordinary gradient for Grad-CAM, one guided); Score-CAM needs 512 · ROWS forward passes (one per
channel of layer4 and row), run without gradients in batches of 64.
Prints one JSON object.
"""
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
import torchvision
from captum.attr import GuidedGradCam

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "python"))
from fixtures_deeplift import resnet_twin  # noqa: E402

warnings.filterwarnings("ignore")
ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = ROOT / "target" / "release" / "attrib"
OUT = ROOT / "target" / "bench_cam"
THREADS = 2
ENV = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}


def timed(f, repeat):
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def attrib(method, repeat, extra=()):
    out = OUT / f"{method}.npy"
    cmd = [str(BIN), "explain", "--model", str(OUT / "resnet18.pt"), "--input", str(OUT / "x.npy"), "--method", method,
           "--layer", "layer4", "--device", "cpu", "--target", "0", "--out", str(out), "--json", "--repeat", str(repeat), *extra]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=ENV)
    j = json.loads(res.stdout.strip().splitlines()[-1])
    return j, np.load(out)


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.set_num_threads(THREADS)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18().eval()
    x = torch.randn(rows, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    torch.jit.trace(resnet, x).save(str(OUT / "resnet18.pt"))
    np.save(OUT / "x.npy", x.numpy())
    traced = torch.jit.load(str(OUT / "resnet18.pt")).eval()
    twin = resnet_twin(resnet)
    report = {"rows": rows, "threads": THREADS, "torch": torch.__version__}

    ggc, ggc_attr = attrib("guided-grad-cam", repeat)
    captum = GuidedGradCam(twin, twin.layer4)
    ref = captum.attribute(x, target=0).detach()
    report["guided_grad_cam"] = {
        "attrib_ms": ggc["elapsed_ms"], "attrib_first_ms": ggc.get("first_ms"),
        "captum_ms": timed(lambda: captum.attribute(x, target=0), repeat),
        "max_rel_difference": float(np.abs(ggc_attr - ref.numpy()).max() / max(np.abs(ref.numpy()).max(), 1e-30)),
    }

    def fwd_bwd():
        xx = x.clone().requires_grad_()
        torch.autograd.grad(traced(xx)[:, 0].sum(), xx)
    report["guided_grad_cam"]["floor_ms"] = 2 * timed(fwd_bwd, repeat)

    sc, _ = attrib("score-cam", 1)
    masked = x.repeat(64 // rows if rows <= 64 else 1, 1, 1, 1)[:64]

    def forwards():
        with torch.no_grad():
            for _ in range(512 * rows // 64):
                traced(masked)
    with torch.no_grad():
        traced(masked)  # warm-up
    t = time.perf_counter()
    forwards()
    report["score_cam"] = {"attrib_ms": sc["elapsed_ms"], "attrib_first_ms": sc.get("first_ms"),
                           "floor_ms": (time.perf_counter() - t) * 1e3, "forward_rows": 512 * rows}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
