"""Data sets and untrained architectures of the bundled example models (issue 5).

The models themselves are trained in Rust with tch (`examples/train_bundled.rs`); this script
only prepares what that trainer reads, from the data sets that ship inside the scikit-learn
wheel (nothing is downloaded):

- handwritten digits (`load_digits`, 1797 images of 8x8 pixels, intensities 0..16): a fixed,
  stratified 80/20 split, stored as uint8 [N, 8, 8] exactly as scikit-learn gives them. The
  trainer and the tests upsample them to 16x16 (x / 16, bilinear, libtorch's own kernel), so the
  committed files stay small (the 16x16 float32 test split alone would be 368 KB);
- breast cancer Wisconsin (`load_breast_cancer`, 569 rows of 30 features, 0 = malignant,
  1 = benign): the same kind of split, features standardised with the training split's mean
  and standard deviation (saved, with the feature names, for anyone explaining new rows);
- the two architectures, untrained (seeded initialisation), as TorchScript from
  `torch.jit.script`, so that `tch::TrainableCModule` can load and train their parameters.

Run from the repository root:  .venv/bin/python examples/python/export_datasets.py
Then train:  cargo run --release -p attrib-examples --example train_bundled
Deterministic (fixed seeds): the outputs are the same on every run.
"""
import json
import pathlib

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

DATA = pathlib.Path("examples/data")
TRAINING = DATA / "training"
SEED = 0


class DigitsCNN(nn.Module):
    """16x16 grey digit -> 10 logits. 3.8k parameters."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))  # [N, 8, 8, 8]
        x = self.pool(torch.relu(self.conv2(x)))  # [N, 16, 4, 4]
        return self.fc(x.flatten(1))


class BreastCancerMLP(nn.Module):
    """30 standardised features -> 2 logits (0 = malignant, 1 = benign)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(30, 32)
        self.fc2 = nn.Linear(32, 16)
        self.fc3 = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def save(name, array, dtype):
    np.save(TRAINING / name, np.ascontiguousarray(array, dtype=dtype))


def digits():
    d = load_digits()
    images = d.images.astype(np.uint8)  # 0..16, exact
    assert images.max() == 16 and np.array_equal(images, d.images)
    x_train, x_test, y_train, y_test = train_test_split(
        images, d.target, test_size=0.2, random_state=SEED, stratify=d.target
    )
    save("digits_train_x.npy", x_train, np.uint8)
    save("digits_train_y.npy", y_train, np.int64)
    save("digits_test_x.npy", x_test, np.uint8)
    save("digits_test_y.npy", y_test, np.int64)
    print(f"digits: {len(x_train)} training, {len(x_test)} test images")


def breast_cancer():
    d = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        d.data, d.target, test_size=0.2, random_state=SEED, stratify=d.target
    )
    mean, std = x_train.mean(0), x_train.std(0)
    save("breast_cancer_train_x.npy", (x_train - mean) / std, np.float32)
    save("breast_cancer_train_y.npy", y_train, np.int64)
    save("breast_cancer_test_x.npy", (x_test - mean) / std, np.float32)
    save("breast_cancer_test_y.npy", y_test, np.int64)
    names = [str(n) for n in d.feature_names]
    (DATA / "breast_cancer_features.json").write_text(json.dumps(names, indent=1) + "\n")
    scaler = {
        "features": names,
        "mean": mean.tolist(),
        "std": std.tolist(),
        "classes": [str(c) for c in d.target_names],
        "note": "model input = (raw feature - mean) / std; mean and std of the training split",
    }
    (DATA / "breast_cancer_scaler.json").write_text(json.dumps(scaler, indent=1) + "\n")
    print(f"breast cancer: {len(x_train)} training, {len(x_test)} test rows, classes {scaler['classes']}")


def architectures():
    torch.manual_seed(SEED)
    torch.jit.script(DigitsCNN()).save(str(TRAINING / "digits_cnn_init.pt"))
    torch.jit.script(BreastCancerMLP()).save(str(TRAINING / "breast_cancer_mlp_init.pt"))


def main():
    TRAINING.mkdir(parents=True, exist_ok=True)
    digits()
    breast_cancer()
    architectures()
    print(f"wrote {TRAINING}/ and {DATA}/breast_cancer_*.json")


if __name__ == "__main__":
    main()
