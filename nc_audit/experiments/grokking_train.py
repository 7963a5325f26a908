"""Training for the grokking demo (nc_audit.experiments.grokking): full-batch AdamW, checkpoints, resume.

At every save step: the training loop's own accuracy and loss on both splits (float32 logits), a
self-describing checkpoint DIR/step_XXXXX.pt, and DIR/resume.state (weights, optimizer state, step,
history and the run's settings, written atomically). ``resume=True`` continues from resume.state; the
training draws no random numbers after the initialisation, so a resumed run is bit-identical to an
uninterrupted one on the same machine and threads. Only ``steps`` may differ from the stored settings.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch.nn.functional import cross_entropy

from nc_audit.core.errors import InputError
from nc_audit.core.progress import Tracker
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.data.datasets import ArrayDataset, load_dataset
from nc_audit.models.registry import architecture_record, build_model

OPTIMIZER: dict[str, Any] = {"name": "AdamW", "lr": 1e-3, "weight_decay": 1.0, "betas": (0.9, 0.98)}
#: Training state for --resume; not a .pt, so `nc-audit track DIR` does not take it for a checkpoint.
RESUME_NAME = "resume.state"


def save_steps(steps: int, save_every: int) -> list[int]:
    """0, save_every, 2·save_every, … and the last step."""
    return sorted({*range(0, steps + 1, save_every), steps})


def _evaluate(model: torch.nn.Module, splits: dict[str, ArrayDataset]) -> dict[str, float]:
    """The training loop's own accuracy and mean cross-entropy on each split (float32 logits)."""
    row = {}
    with torch.inference_mode():
        for name, split in splits.items():
            logits = model(split.inputs)  # (N, p)
            row[f"{name}_accuracy"] = float((logits.argmax(1) == split.labels).double().mean())
            row[f"{name}_loss"] = float(cross_entropy(logits, split.labels))
    return row


def _optimizer(model: torch.nn.Module, settings: dict[str, Any]) -> torch.optim.Optimizer:
    """AdamW with the run's settings (``config["optimizer"]``; the defaults are ``OPTIMIZER``)."""
    return torch.optim.AdamW(
        model.parameters(),
        lr=settings["lr"],
        weight_decay=settings["weight_decay"],
        betas=tuple(settings["betas"]),
    )


def _resume_state(out: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """DIR/resume.pt when it belongs to this run (InputError otherwise), or None when there is none."""
    path = out / RESUME_NAME
    if not path.exists():
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file of any kind: say which and why
        raise InputError(f"--resume: {path} is not readable ({str(error).splitlines()[0][:120]})") from None
    stored = dict(state.get("config", {}))
    changed = [
        f"{k} {stored.get(k)!r} → {v!r}" for k, v in config.items() if k != "steps" and stored.get(k) != v
    ]
    if changed:
        raise InputError(
            f"--resume: settings differ from the run in {out}: {'; '.join(changed)}; repeat the original "
            "options (only --steps may change) or use another --out"
        )
    if int(state["step"]) > config["steps"]:
        raise InputError(f"--resume: {path} is at step {state['step']}, past --steps {config['steps']}")
    return state


def train(
    out: Path,
    spec: str,
    config: dict[str, Any],
    tracker: Tracker,
    resume: bool = False,
) -> tuple[list[Path], list[dict[str, Any]], float]:
    """Full-batch AdamW on the train split; checkpoints and the loop's own accuracy/loss per save.
    Returns (checkpoint paths, history, seconds spent training — summed over resumed invocations)."""
    splits = {name: load_dataset(spec, name) for name in ("train", "test")}
    steps, save_every, p = config["steps"], config["save_every"], config["p"]
    torch.manual_seed(config["seed"])
    record = architecture_record(config["model"]["name"], {"p": p, **config["model"]["config"]}, p)
    model = build_model(record)
    optimizer = _optimizer(model, config.get("optimizer", OPTIMIZER))
    wanted = set(save_steps(steps, save_every))
    history: list[dict[str, Any]] = []
    first, before = 0, 0.0
    state = _resume_state(out, config) if resume else None
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        history, first = list(state["history"]), int(state["step"])
        before = float(state.get("train_seconds", 0.0))
        wanted |= {h["step"] for h in history}
    started = time.perf_counter()
    paths = [out / f"step_{h['step']:05d}.pt" for h in history]
    with tracker.stage(f"train {record['name']} on {spec}", steps, unit="steps") as advance:
        advance(first)
        for step in range(first, steps + 1):
            if step in wanted and not (history and history[-1]["step"] == step):
                history.append({"step": step, **_evaluate(model, splits)})
                meta = {"step": step, "dataset": spec, "metrics": history[-1]}
                paths.append(save_checkpoint(out / f"step_{step:05d}.pt", model.state_dict(), record, meta))
                payload = {
                    "config": config,
                    "step": step,
                    "history": history,
                    "optimizer": optimizer.state_dict(),
                    "train_seconds": before + time.perf_counter() - started,
                }
                save_checkpoint(out / RESUME_NAME, model.state_dict(), record, extra=payload)
            if step == steps:
                break
            loss = cross_entropy(model(splits["train"].inputs), splits["train"].labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            advance(1)
    return paths, history, before + time.perf_counter() - started
