"""Train the shipped sample trajectory: an MLP on scikit-learn's digits, far past 100% training accuracy.

`make samples` runs this. Fixed seeds; checkpoints at 8 log-spaced epochs, each with its feature dump
(train and test splits), written to sample_checkpoints/digits-mlp/. Deterministic on a given platform.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from nc_audit.io.datasets import load_dataset
from nc_audit.io.save import save_checkpoint
from nc_audit.models.extract import extract
from nc_audit.models.registry import architecture_record, build_model

SAVE_AT = (1, 3, 8, 20, 50, 120, 300, 750)
DATA = "digits"


def train(
    out: Path, seed: int = 0, epochs: int = SAVE_AT[-1], batch_size: int = 64, lr: float = 0.05
) -> None:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    dataset = load_dataset(DATA, "train")
    record = architecture_record("mlp", {"input_dim": 64, "hidden": [128, 64]}, dataset.num_classes)
    model = build_model(record)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    for epoch in range(1, epochs + 1):
        model.train()
        permutation = torch.randperm(len(dataset), generator=order)
        for start in range(0, len(dataset), batch_size):
            index = permutation[start : start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(dataset.inputs[index]), dataset.labels[index])
            loss.backward()
            optimizer.step()
        schedule.step()
        if epoch in SAVE_AT:
            model.eval()
            with torch.no_grad():
                accuracy = (model(dataset.inputs).argmax(1) == dataset.labels).float().mean().item()
            path = out / f"epoch_{epoch:04d}.pt"
            save_checkpoint(
                path, model.state_dict(), record, {"epoch": epoch, "step": epoch, "dataset": DATA}
            )
            extract(path, DATA, path.with_suffix(".h5"))
            print(f"epoch {epoch:4d}  loss {loss.item():.5f}  train accuracy {accuracy:.4f}  -> {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("sample_checkpoints/digits-mlp"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train(args.out, args.seed)


if __name__ == "__main__":
    main()
