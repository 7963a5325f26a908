"""Train the shipped sample trajectory: an MLP with BatchNorm on scikit-learn's digits, into the terminal phase.

`make samples` runs this. Model: the built-in ``mlp``, 64 → 64 → 64 → 64 (Linear → BatchNorm → ReLU)
→ head. Recipe (nc_audit.train.recipe): SGD momentum 0.9, lr 0.05 cosine over 300 epochs, weight decay
5e-3, batch 64, the trailing partial batch of every epoch dropped. Checkpoints at 8 log-spaced epochs,
each with its feature dump (train and test splits), written to sample_checkpoints/digits-mlp/ (older
epoch_XXXX files there are removed first). Seed 0, one thread, deterministic algorithms: the same
files on a given platform and PyTorch build.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.data.datasets import load_dataset
from nc_audit.models.extract import extract
from nc_audit.models.registry import architecture_record
from nc_audit.models.spec import ModelSpec
from nc_audit.train.recipe import Recipe, train_from_scratch

SAVE_AT = (1, 2, 5, 12, 30, 70, 150, 300)
DATA = "digits"
MODEL = {"input_dim": 64, "hidden": [64, 64, 64], "batch_norm": True}
RECIPE = Recipe(epochs=SAVE_AT[-1], lr=0.05, momentum=0.9, weight_decay=5e-3, batch_size=64, drop_last=True)


def accuracy(model: nn.Module, split: str) -> float:
    dataset = load_dataset(DATA, split)
    with torch.no_grad():
        return float((model(dataset.inputs).argmax(1) == dataset.labels).double().mean())


def train(out: Path, seed: int = 0) -> None:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # a 64-wide MLP: one thread is fastest on shared cores, and fixes the floats
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("epoch_*.pt"), *out.glob("epoch_*.h5")]:
        stale.unlink()
    dataset = load_dataset(DATA, "train")
    record = architecture_record("mlp", MODEL, dataset.num_classes)
    started = time.perf_counter()

    def checkpoint(epoch: int, model: nn.Module, loss: float) -> None:
        if epoch not in SAVE_AT:
            return
        model.eval()
        path = out / f"epoch_{epoch:04d}.pt"
        meta = {"epoch": epoch, "step": epoch, "dataset": DATA, "recipe": RECIPE.to_dict(), "seed": seed}
        save_checkpoint(path, model.state_dict(), record, meta)
        extract(path, DATA, path.with_suffix(".h5"), model=ModelSpec(device="cpu"))
        print(
            f"epoch {epoch:4d}  loss {loss:.5f}  train accuracy {accuracy(model, 'train'):.4f}  "
            f"test accuracy {accuracy(model, 'test'):.4f}  ({time.perf_counter() - started:.1f} s) -> {path}",
            flush=True,
        )

    train_from_scratch(record, dataset, RECIPE, seed, on_epoch=checkpoint)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("sample_checkpoints/digits-mlp"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train(args.out, args.seed)


if __name__ == "__main__":
    main()
