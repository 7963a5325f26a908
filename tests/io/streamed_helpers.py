"""Small generated inputs for the streamed --data tests: image folders, a CNN factory, tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

CNN_SOURCE = """
import torch
from torch import nn


def small_cnn(num_classes=3):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, num_classes),
    )


class Pairs(torch.utils.data.Dataset):
    classes = ["a", "b", "c"]

    def __init__(self, n, as_dict=False, fail_at=-1):
        g = torch.Generator().manual_seed(n)
        self.x = torch.randn(n, 3, 8, 8, generator=g)
        self.as_dict, self.fail_at = as_dict, fail_at

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if i == self.fail_at:
            raise ValueError(f"sample {i} is broken")
        return {"inputs": self.x[i], "label": i % 3} if self.as_dict else (self.x[i], i % 3)


def make_data(n=30, as_dict=False, fail_at=-1):
    return Pairs(n, as_dict, fail_at)


def make_loader(n=30):
    return torch.utils.data.DataLoader(Pairs(n), batch_size=7)
"""


def cnn_checkpoint(folder: Path) -> tuple[Path, str]:
    """(checkpoint of small_cnn, the --model spec of its factory file)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "cnn_factory.py"
    source.write_text(CNN_SOURCE)
    namespace: dict[str, object] = {}
    exec(compile(CNN_SOURCE, str(source), "exec"), namespace)  # the test's own source, as the factory
    torch.manual_seed(0)
    model = namespace["small_cnn"]()  # type: ignore[operator]
    path = folder / "cnn.pt"
    torch.save(model.state_dict(), path)
    return path, f"{source}:small_cnn"


def image_folder(root: Path, per_class: int = 6, classes: int = 3, side: int = 12, seed: int = 0) -> Path:
    """root/class_k/NNNN.png (and a .jpg per class): images whose brightness depends on the class."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = (rng.random((side, side, 3)) * 60 + c * 80).astype(np.uint8)
            suffix = "jpg" if i == 0 else "png"
            Image.fromarray(pixels).save(folder / f"{i:04d}.{suffix}")
    return root
