"""torchvision's transforms on float tensors and on PNG files, for the image-input tests."""
import pathlib

import numpy as np
import torch
import torchvision.transforms.functional as F
from PIL import Image

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def make(out: pathlib.Path):
    d = out / "images"
    d.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(21)
    x = torch.rand(3, 37, 53, generator=g)
    np.save(d / "float_input.npy", x.numpy())
    # Downscale (shorter side 20), centre crop 16, ImageNet normalisation.
    y = F.normalize(F.center_crop(F.resize(x, 20, antialias=True), [16, 16]), MEAN, STD)
    np.save(d / "float_resize20_crop16_norm.npy", y.numpy())
    # Upscale to an exact size.
    np.save(d / "float_resize50x70.npy", F.resize(x, [50, 70], antialias=True).numpy())
    # Odd crop offsets (Python rounds half to even).
    np.save(d / "float_crop_30x40.npy", F.center_crop(x, [30, 40]).numpy())

    # PNG files: RGB and grey. torchvision reads them as uint8 -> [0, 1] floats (to_tensor).
    rgb = (torch.rand(30, 41, 3, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(rgb, "RGB").save(d / "rgb.png")
    t = F.to_tensor(Image.open(d / "rgb.png"))
    np.save(d / "rgb_resize24_crop20_norm.npy", F.normalize(F.center_crop(F.resize(t, 24, antialias=True), [20, 20]), MEAN, STD).numpy())
    grey = (torch.rand(12, 12, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(grey, "L").save(d / "grey.png")
    np.save(d / "grey.npy", F.to_tensor(Image.open(d / "grey.png")).numpy())
    folder = d / "folder"
    folder.mkdir(exist_ok=True)
    for i in range(3):
        Image.fromarray(np.roll(grey, i, axis=1), "L").save(folder / f"digit_{i}.png")
    (d / "empty_folder").mkdir(exist_ok=True)

    # The README's ResNet-18 example: torchvision's network (random weights, seeded) and a JPEG.
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, str(root / "examples/python/export_resnet18.py"), str(d / "resnet18.pt")], check=True)
    photo = (torch.rand(300, 400, 3, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(photo, "RGB").save(d / "photo.jpg", quality=90)
