"""Layer Integrated Gradients at ResNet-18's `layer4`, Captum vs attrib, and the floor.

Case: torchvision ResNet-18 (random weights, eval), a batch of BATCH 224x224 images, 50 steps,
Gauss-Legendre, zero baseline, target class 0, the convergence delta computed (attrib's
default; Captum's return_convergence_delta=True), THREADS threads.

- attrib: `attrib explain --method layer-integrated-gradients --layer layer4 --repeat REPS
  --json` on the traced model (warm median of REPS calls after the first; model loading and
  warm-up excluded);
- Captum: LayerIntegratedGradients on the eager model (Captum hooks the `layer4` module, which a
  TorchScript module cannot), internal_batch_size CHUNK rows (one batch of 50*BATCH rows with
  parameter gradients recorded does not fit in memory); warm median of REPS calls after one;
- floors, in plain PyTorch on the eager model, chunks of CHUNK rows:
  - "hooked": the passes as Captum makes them without its bookkeeping: the model's forward on
    the 2*BATCH input and baseline rows (layer values, then outputs for the delta: 4*BATCH
    forwards), and 50*BATCH forwards of the whole model with `layer4`'s output replaced by a
    leaf tensor, plus the backward to that leaf (parameters frozen);
  - "minimal": what any implementation must compute: one forward of the 2*BATCH input and
    baseline rows (layer values and outputs together), and 50*BATCH forward+backward passes of
    the part after `layer4` (average pool, fc) from the path points. attrib's substituted
    TorchScript graph runs only that part on the path points: the layers before `layer4` feed
    nothing else, so the graph executor drops them (dead code).

Usage: python benches/side_by_side_layer_ig.py [REPS] [BATCH]   (repository root, venv active)
"""
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import torch
from captum.attr import LayerIntegratedGradients

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_models import median_ms  # noqa: E402

THREADS = 2
STEPS = 50
CHUNK = 20
ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench_layer_ig"


def floor_once(model, x, steps):
    """The bare forward/backward passes of layer IG at layer4 (see the module docs)."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    _, alphas_fn = approximation_parameters("gausslegendre")
    alphas = torch.tensor(alphas_fn(steps), dtype=x.dtype)
    base = torch.zeros_like(x)
    with torch.no_grad():
        stash = {}
        h = model.layer4.register_forward_hook(lambda m, i, o: stash.__setitem__("v", o))
        model(torch.cat([x, base]))
        h.remove()
        a_x, a_b = stash["v"].chunk(2)
        model(torch.cat([x, base]))  # F(x), F(baseline) for the delta
    n = x.shape[0]
    rows = steps * n
    sub = {}
    h = model.layer4.register_forward_hook(lambda m, i, o: sub["v"])
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for s in range(0, rows, CHUNK):
            e = min(s + CHUNK, rows)
            k = torch.arange(s, e) // n
            i = torch.arange(s, e) % n
            v = (a_b[i] + alphas[k].view(-1, 1, 1, 1) * (a_x[i] - a_b[i])).requires_grad_()
            sub["v"] = v
            out = model(x[i])[:, 0].sum()
            torch.autograd.grad(out, v)
    finally:
        h.remove()
        for p in model.parameters():
            p.requires_grad_(True)


def minimal_floor_once(model, x, steps):
    """One forward at the inputs and baselines, then the head from layer4 on the path points."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    _, alphas_fn = approximation_parameters("gausslegendre")
    alphas = torch.tensor(alphas_fn(steps), dtype=x.dtype)
    with torch.no_grad():
        stash = {}
        h = model.layer4.register_forward_hook(lambda m, i, o: stash.__setitem__("v", o))
        model(torch.cat([x, torch.zeros_like(x)]))
        h.remove()
        a_x, a_b = stash["v"].chunk(2)
    n, rows = x.shape[0], steps * x.shape[0]
    for s in range(0, rows, CHUNK):
        e = min(s + CHUNK, rows)
        k, i = torch.arange(s, e) // n, torch.arange(s, e) % n
        v = (a_b[i] + alphas[k].view(-1, 1, 1, 1) * (a_x[i] - a_b[i])).requires_grad_()
        out = model.fc(torch.flatten(model.avgpool(v), 1))[:, 0].sum()
        torch.autograd.grad(out, v)


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    torch.set_num_threads(THREADS)
    OUT.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "attrib-cli"], cwd=ROOT, check=True, env=env)
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 224, 224, generator=g)
    path, xin, attr_out = OUT / "resnet18.pt", OUT / "x.npy", OUT / "lig.npy"
    torch.jit.trace(model, x[:1]).save(str(path))
    np.save(xin, x.numpy())
    print(f"load average before: {os.getloadavg()}", flush=True)

    t = time.perf_counter()
    res = subprocess.run(
        [str(ROOT / "target/release/attrib"), "explain", "--model", str(path), "--input", str(xin), "--device", "cpu",
         "--method", "layer-integrated-gradients", "--layer", "layer4", "--target", "0", "--steps", str(STEPS),
         "--repeat", str(reps), "--json", "--out", str(attr_out)],
        check=True, capture_output=True, text=True, env=env,
    )
    r = json.loads(res.stdout)
    attrib_ms = r["elapsed_ms"]
    print(f"attrib: first {r['first_ms']:.0f} ms, warm median {attrib_ms:.0f} ms (min {r['elapsed_min_ms']:.0f}, max {r['elapsed_max_ms']:.0f}); "
          f"process {time.perf_counter() - t:.1f} s", flush=True)

    lig = LayerIntegratedGradients(model, model.layer4)
    captum_attr = {}

    def captum_once():
        captum_attr["a"], _ = lig.attribute(x, target=0, n_steps=STEPS, method="gausslegendre",
                                            internal_batch_size=CHUNK, return_convergence_delta=True)

    captum_ms = median_ms(captum_once, reps)
    print(f"captum: warm median {captum_ms:.0f} ms", flush=True)
    floor_ms = median_ms(lambda: floor_once(model, x, STEPS), reps)
    print(f"hooked floor: warm median {floor_ms:.0f} ms", flush=True)
    for p in model.parameters():
        p.requires_grad_(False)
    min_ms = median_ms(lambda: minimal_floor_once(model, x, STEPS), reps)
    print(f"minimal floor: warm median {min_ms:.0f} ms", flush=True)
    ours = torch.from_numpy(np.load(attr_out)).double()
    diff = (ours - captum_attr["a"].double()).abs().max().item() / captum_attr["a"].abs().max().item()
    print(f"load average after: {os.getloadavg()}", flush=True)
    print(json.dumps({
        "batch": batch, "steps": STEPS, "threads": THREADS, "reps": reps,
        "attrib_ms": attrib_ms, "captum_ms": captum_ms, "floor_ms": floor_ms,
        "minimal_floor_ms": min_ms, "captum_over_attrib": captum_ms / attrib_ms,
        "attrib_over_hooked_floor": attrib_ms / floor_ms, "attrib_over_minimal_floor": attrib_ms / min_ms,
        "max_rel_diff_vs_captum_float32": diff,
    }))


if __name__ == "__main__":
    main()
