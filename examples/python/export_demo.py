"""Build the bundled demo of `make demo`: a small CNN trained on scikit-learn's handwritten
digits (8x8 images, shipped inside the scikit-learn wheel), exported to TorchScript, and a few
held-out digits to explain.

Run from the repository root:  .venv/bin/python examples/python/export_demo.py
Writes examples/data/digits_cnn.pt, examples/data/digits.npy, examples/data/digits_labels.npy.
Deterministic (fixed seeds); takes a few seconds on 2 cores.
"""
import pathlib

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

OUT = pathlib.Path("examples/data")


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.flatten(1))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target, dtype=torch.int64)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = perm[:1400], perm[1400:]
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(15):
        for idx in train.split(64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    print(f"test accuracy on {len(test)} held-out digits: {acc:.3f}")
    OUT.mkdir(parents=True, exist_ok=True)
    torch.jit.trace(model, x[:1]).save(str(OUT / "digits_cnn.pt"))
    # One held-out example of each digit 0..9.
    picks = [int(test[(y[test] == d).nonzero()[0, 0]]) for d in range(10)]
    np.save(OUT / "digits.npy", x[picks].numpy().astype(np.float32))
    np.save(OUT / "digits_labels.npy", y[picks].numpy().astype(np.int64))


if __name__ == "__main__":
    main()
