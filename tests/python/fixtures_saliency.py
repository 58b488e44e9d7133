"""Captum's Saliency on the standard models: signed and absolute, class 0 and per-row targets."""
import pathlib

import torch
from captum.attr import Saliency

from models import save_npy, save_standard, standard_models


def make(out: pathlib.Path):
    save_standard(out)
    for name, (model, xs, extra, targets) in standard_models().items():
        d = out / "saliency" / name
        sal = Saliency(model)
        cases = {"none": None} if targets is None else {"class0": 0, "per_row": targets}
        for tname, t in cases.items():
            for absolute in (False, True):
                attr = sal.attribute(
                    tuple(x.clone().requires_grad_() for x in xs),
                    target=t,
                    abs=absolute,
                    additional_forward_args=extra,
                )
                for i, a in enumerate(attr):
                    save_npy(d / f"{tname}_abs{int(absolute)}_{i}.npy", a)
