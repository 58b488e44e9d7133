"""Models and timing shared by the side-by-side scripts and the GPU check (imported from benches/)."""
import statistics
import time

import torch.nn as nn


def median_ms(f, reps):
    """Call `f` once to warm up, then `reps` times; the median wall time in ms."""
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) * 1e3)
    return float(statistics.median(ts))


class SmallCNN(nn.Module):
    """Two conv-ReLU-maxpool blocks and a linear layer; for 3 x 32 x 32 inputs by default
    (`side` = 16 for 3 x 16 x 16)."""

    def __init__(self, side=32):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * (side // 4) * (side // 4), 10),
        )

    def forward(self, x):
        return self.f(x)
