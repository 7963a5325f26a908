"""Watch Neural Collapse while training: an MLP on scikit-learn's digits, measured every 20 steps.

python examples/monitor_training.py [--steps 300] [--out runs/monitor.jsonl]
nc-audit track runs/monitor.jsonl --plot runs/monitor.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.nn.functional import cross_entropy

from nc_audit.io.data.datasets import load_dataset
from nc_audit.measurement.monitor import Monitor
from nc_audit.models.hooks import forward_with_features
from nc_audit.models.registry import architecture_record, build_model


def main() -> None:
    """Train for --steps minibatch steps, logging one report record every --every steps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (batches of 256)")
    parser.add_argument("--every", type=int, default=20, help="measure every this many steps")
    parser.add_argument("--out", type=Path, default=Path("runs/monitor.jsonl"), help="trajectory file")
    args = parser.parse_args()

    torch.manual_seed(0)
    train = load_dataset("digits", "train")  # inputs (N, 64), labels (N,)
    model = build_model(architecture_record("mlp", {"input_dim": 64}, train.num_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    monitor = Monitor(args.out, every=args.every, label="digits-mlp", append=False)

    for step in range(args.steps + 1):
        batch = torch.randint(len(train), (256,))  # (256,) sample indices
        logits, features = forward_with_features(model, train.inputs[batch])  # (256, C), (256, d)
        loss = cross_entropy(logits, train.labels[batch])
        record = monitor.log(
            step, features, train.labels[batch], model.head.weight, model.head.bias, loss=loss.item()
        )
        if record is not None:
            metrics = record["metrics"]
            print(
                f"step {step:4d}  loss {loss.item():.3f}  acc {metrics['accuracy']:.3f}  "
                f"nc1 {metrics['nc1']:.3f}  mir {metrics['mir']:.3f}  hdr {metrics['hdr']:.3f}"
            )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    print(f"\nwrote {args.out}; plot the trajectory with:")
    print(f"  nc-audit track {args.out} --plot {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
