"""Export torchvision's ResNet-18 to TorchScript for `attrib explain` on photos.

Usage: .venv/bin/python examples/python/export_resnet18.py OUT.pt [WEIGHTS.pth]

Without WEIGHTS the network has random weights (enough to try the pipeline; nothing is
downloaded). With a state_dict file of ImageNet weights you already have, predictions are real.
Then, for example:

    target/release/attrib explain --model OUT.pt --input photo.jpg --resize 256 --center-crop 224 \
        --normalize imagenet --method integrated-gradients --out ig.npy --heatmap ig.png
"""
import sys

import torch
import torchvision


def main():
    out = sys.argv[1]
    torch.manual_seed(0)  # reproducible random weights
    model = torchvision.models.resnet18(weights=None)
    if len(sys.argv) > 2:
        model.load_state_dict(torch.load(sys.argv[2], map_location="cpu"))
    model.eval()
    torch.jit.trace(model, torch.zeros(1, 3, 224, 224)).save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
