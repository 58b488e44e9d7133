"""GPU check of attrib (issue 17): every method on CUDA against its CPU result, and side-by-side
timings against Captum on CUDA, as ratios. One run; prints a table. Run through
`scripts/gpu-check.sh` (or `make gpu-check`), which finds the binary, libtorch and Captum.

Usage: python scripts/gpu_check.py ATTRIB_BIN OUT_DIR [REPS]

On a machine without a CUDA device it prints `SKIPPED: ...` and exits 0: nothing is claimed.
Timings: attrib's `first_ms` and the median of REPS warm calls (`--repeat`, CUDA-synchronised by
attrib), Captum's first call and warm median (torch.cuda.synchronize around each call), and the
floor: the bare forward (+backward for gradient methods) of the same rows through the same
TorchScript module, in one call, warm median.
"""
import json
import pathlib
import subprocess
import sys
import time

import numpy as np
import torch


sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benches"))
from bench_models import SmallCNN  # noqa: E402


def sync():
    torch.cuda.synchronize()


def timed(f, reps):
    sync()
    t = time.perf_counter()
    f()
    sync()
    first = (time.perf_counter() - t) * 1e3
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        sync()
        ts.append((time.perf_counter() - t) * 1e3)
    return first, float(np.median(ts))


def floor_ms(module, x, rows, grad, reps):
    """Bare forward (+ backward of the target's sum) of `rows` rows like x, in one call."""
    reps_x = x.repeat((rows + x.shape[0] - 1) // x.shape[0], 1, 1, 1)[:rows].contiguous()

    def run():
        if grad:
            z = reps_x.detach().requires_grad_(True)
            module(z)[:, 0].sum().backward()
        else:
            with torch.no_grad():
                module(reps_x)

    return timed(run, reps)[1]


def attrib_run(binary, model, x_path, method_flags, out, device, reps):
    cmd = [str(binary), "explain", "--model", str(model), "--input", str(x_path), "--target", "0",
           "--out", str(out), "--json", "--device", device, "--repeat", str(reps)] + method_flags
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{r.stderr}")
    return json.loads(r.stdout)


def main():
    binary, out_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    if not torch.cuda.is_available():
        print("SKIPPED: torch sees no CUDA device on this machine; the GPU check needs one")
        return 0
    from captum.attr import FeatureAblation, IntegratedGradients, Occlusion, Saliency
    import torchvision

    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    models = {
        "small_cnn": (SmallCNN().eval(), (3, 32, 32)),
        "resnet18": (torchvision.models.resnet18(weights=None).eval(), (3, 224, 224)),
        "resnet50": (torchvision.models.resnet50(weights=None).eval(), (3, 224, 224)),
    }
    patches = torch.arange(64).reshape(8, 8).repeat_interleave(4, 0).repeat_interleave(4, 1)
    cases = [
        # name, model, rows, captum method, captum kwargs, attrib flags, needs grad, model rows
        ("IG resnet18 1x50", "resnet18", 1, IntegratedGradients, dict(n_steps=50), ["--method", "integrated-gradients", "--steps", "50"], True, 50),
        ("IG resnet18 16x50", "resnet18", 16, IntegratedGradients, dict(n_steps=50), ["--method", "integrated-gradients", "--steps", "50"], True, 800),
        ("saliency resnet18 64", "resnet18", 64, Saliency, dict(abs=False), ["--method", "saliency"], True, 64),
        ("ablation small_cnn 16x64 groups", "small_cnn", 16, FeatureAblation, dict(feature_mask=patches.reshape(1, 1, 32, 32)), ["--method", "feature-ablation", "--feature-mask", "grid:4x4"], False, 16 * 65),
        ("occlusion resnet18 4x169", "resnet18", 4, Occlusion, dict(sliding_window_shapes=(3, 32, 32), strides=(3, 16, 16)), ["--method", "occlusion", "--window", "3,32,32", "--strides", "3,16,16"], False, 4 * 170),
        ("IG resnet50 8x300", "resnet50", 8, IntegratedGradients, dict(n_steps=300, internal_batch_size=256), ["--method", "integrated-gradients", "--steps", "300"], True, 2400),
    ]
    rows_out = []
    for name, mname, n, cls, kw, flags, grad, model_rows in cases:
        module, shape = models[mname]
        x = torch.randn(n, *shape, generator=g)
        path = out_dir / f"{mname}.pt"
        if not path.exists():
            torch.jit.trace(module, x[:1]).save(str(path))
        x_path = out_dir / f"{name.replace(' ', '_')}.npy"
        np.save(x_path, x.numpy())
        traced = torch.jit.load(str(path), map_location="cuda").eval()
        xc = x.cuda()
        m = cls(traced)
        captum_kw = dict(kw)
        if "feature_mask" in captum_kw:
            captum_kw["feature_mask"] = captum_kw["feature_mask"].cuda()
        result = {}

        def captum_call():
            result["a"] = m.attribute(xc, target=0, **captum_kw)

        try:
            c_first, c_warm = timed(captum_call, reps)
        except torch.cuda.OutOfMemoryError:
            c_first = c_warm = float("nan")
            torch.cuda.empty_cache()
        if cls in (FeatureAblation, Occlusion):
            best = c_warm
            for ppe in (16, 64):
                try:
                    best = min(best, timed(lambda: m.attribute(xc, target=0, perturbations_per_eval=ppe, **captum_kw), reps)[1])
                except torch.cuda.OutOfMemoryError:
                    torch.cuda.empty_cache()
            c_warm = best
        fl = floor_ms(traced, xc, model_rows, grad, reps)
        a = attrib_run(binary, path, x_path, flags, out_dir / "attr_cuda.npy", "cuda", reps)
        small = n * int(np.prod(shape)) <= 16 * 3 * 224 * 224
        diff = float("nan")
        if small and mname != "resnet50":
            attrib_run(binary, path, x_path, flags, out_dir / "attr_cpu.npy", "cpu", 0)
            ac, ap = np.load(out_dir / "attr_cuda.npy"), np.load(out_dir / "attr_cpu.npy")
            diff = float(np.abs(ac - ap).max() / max(np.abs(ap).max(), 1e-30))
        if "a" in result:
            ref = result["a"].detach().cpu().numpy()
            cap_diff = float(np.abs(np.load(out_dir / "attr_cuda.npy") - ref).max() / max(np.abs(ref).max(), 1e-30))
        else:
            cap_diff = float("nan")
        row = dict(case=name, captum_ms=c_warm, captum_first_ms=c_first, attrib_ms=a["elapsed_ms"], attrib_first_ms=a["first_ms"],
                   floor_ms=fl, captum_over_attrib=c_warm / a["elapsed_ms"], attrib_over_floor=a["elapsed_ms"] / fl,
                   cuda_vs_cpu_rel=diff, vs_captum_rel=cap_diff, device=a["device"], load_ms=a.get("load_ms"))
        rows_out.append(row)
        print(f"{name:34s} captum {c_warm:8.2f} ms | attrib {a['elapsed_ms']:8.2f} ms (first {a['first_ms']:.1f}) | "
              f"floor {fl:8.2f} ms | captum/attrib {row['captum_over_attrib']:.2f} | attrib/floor {row['attrib_over_floor']:.2f} | "
              f"cuda vs cpu {diff:.1e} | vs captum {cap_diff:.1e}", flush=True)
    (out_dir / "gpu_check.json").write_text(json.dumps(rows_out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
