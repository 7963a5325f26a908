"""`finetune`: the epoch loop — train, measure, checkpoint — and the final outputs.

Per epoch: one pass in a seeded order (nc_audit.train.steps), then measurements on the train split
(nc1, mir, hdr, accuracy) and the test split (accuracy), then DIR/epoch_XXX.pt and DIR/history.jsonl
(rank 0, atomically; the checkpoint first, so the history never runs ahead of it). Epoch 0 is the
model before any step. At the end DIR/final.pt holds the weights and the architecture record; a
``--features`` run also writes DIR/final_features.h5 (adapted features and head, measurable alone).
The optimizer is Adam at a constant learning rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.core.formats import LOSS_KEYS
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.distributed import DistributedContext
from nc_audit.io.checkpoints.load import file_sha256
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.dumps.writer import write_dump
from nc_audit.io.guards.atomic import new_folder
from nc_audit.models.extract import ADAPTED_DUMP_NAME
from nc_audit.train.config import FinetuneConfig
from nc_audit.train.evaluate import DivergedError, current_head, evaluate, features_in_order
from nc_audit.train.session import Run, open_run
from nc_audit.train.state import FINAL_NAME, epoch_path, save_training_checkpoint, write_history
from nc_audit.train.steps import train_epoch


@dataclass(frozen=True)
class FinetuneResult:
    """What a run produced (on rank 0; other ranks get the same paths and an empty history)."""

    out: Path
    history: list[dict[str, Any]]
    final_path: Path
    adapted_dump: Path | None = None
    resumed_from: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def before(self) -> dict[str, Any]:
        """Epoch 0: the model as it was before training."""
        return self.history[0]

    @property
    def after(self) -> dict[str, Any]:
        """The last epoch."""
        return self.history[-1]


def _save_epoch(run: Run) -> None:
    """Rank 0: DIR/epoch_XXX.pt, then DIR/history.jsonl (both atomic)."""
    if not run.ctx.is_main:
        return
    out = run.config.out
    save_training_checkpoint(
        epoch_path(out, run.epoch), run.start.model.state_dict(), run.identity, run.training_state()
    )
    write_history(out, run.history)


def _export_adapted_dump(run: Run, path: Path) -> None:
    """The adapted train (rows trained on) and test features with the trained head, as an nc-audit dump
    that names final.pt (path and sha256): ``measure final.pt --features`` knows it for the adapter's own."""
    model, head_name = run.start.model, run.start.head_name
    final = run.config.out / FINAL_NAME
    model.eval()
    attrs = {"dataset": run.data.spec, "checkpoint_path": str(final), "checkpoint_sha256": file_sha256(final)}
    with write_dump(path, attrs) as writer:
        for name, split in (("train", run.data.train), ("test", run.data.test)):
            if split is None:
                continue
            writer_split = None
            for features, logits, labels in features_in_order(
                model, head_name, split, (0, split.num_samples), run.ctx.device
            ):
                if writer_split is None:
                    writer_split = writer.split(name, split.num_samples, features.shape[1], logits.shape[1])
                writer_split.append(features, labels, logits)
        head = current_head(model, head_name)
        writer.head(head.weight, head.bias, head_name)
    model.train()


def _write_final(run: Run) -> Path | None:
    """Rank 0: DIR/final.pt (and DIR/final_features.h5 for a --features run); returns the dump's path."""
    out = run.config.out
    meta = {"epoch": run.epoch, "step": run.step, "dataset": run.data.spec, "metrics": run.history[-1]}
    extra = {"finetune": {"settings": run.identity.settings, "source": run.identity.source}}
    save_checkpoint(out / FINAL_NAME, run.start.model.state_dict(), run.identity.architecture, meta, extra)
    if run.config.features is None:
        return None
    _export_adapted_dump(run, out / ADAPTED_DUMP_NAME)
    return out / ADAPTED_DUMP_NAME


def _train(run: Run, tracker: Tracker) -> None:
    """Epoch 0 (fresh runs), then every remaining epoch up to --epochs."""
    config, ctx = run.config, run.ctx
    if not run.history:
        measured = evaluate(run.parts.model, run.start.head_name, run.data, ctx)
        run.history.append({"epoch": 0, "step": 0, **dict.fromkeys(LOSS_KEYS), **(measured or {})})
        _save_epoch(run)
    for epoch in range(run.epoch + 1, config.epochs + 1):
        with tracker.stage(
            f"epoch {epoch}/{config.epochs}", run.data.train.num_samples, unit="samples"
        ) as advance:
            losses, steps = train_epoch(run.parts, run.data.train, run.order, ctx, advance)
        _check_converging(losses, epoch, config.lr)
        run.epoch, run.step = epoch, run.step + steps
        try:
            measured = evaluate(run.parts.model, run.start.head_name, run.data, ctx)
        except DivergedError as error:
            raise _diverged(epoch, config.lr, str(error)) from None
        run.history.append({"epoch": epoch, "step": run.step, **losses, **(measured or {})})
        _save_epoch(run)


def _check_converging(losses: dict[str, float], epoch: int, lr: float) -> None:
    """A loss that became NaN or infinite is a diverged run: an InputError naming the epoch and --lr
    (the same on every rank: the losses are all-reduced), before anything measures the broken model."""
    loss = losses.get("loss")
    if loss is not None and not math.isfinite(loss):
        raise _diverged(epoch, lr, f"the mean loss is {loss}")


def _diverged(epoch: int, lr: float, detail: str) -> InputError:
    return InputError(
        f"--lr {lr:g}: the training diverged in epoch {epoch} ({detail}); try a smaller --lr "
        "(the epochs before it are saved)"
    )


def _finetune(config: FinetuneConfig, ctx: DistributedContext, tracker: Tracker) -> FinetuneResult:
    run = open_run(config, ctx)
    _train(run, tracker)
    adapted = _write_final(run) if ctx.is_main else None
    history = run.history if ctx.is_main else []
    return FinetuneResult(config.out, history, config.out / FINAL_NAME, adapted, run.resumed_from, run.notes)


def finetune(config: FinetuneConfig, tracker: Tracker | None = None) -> FinetuneResult:
    """Fine-tune with L = (1 − λ)·CE + λ·CMA (+ MIR/HDR terms); see the package docstring.

    Runs on one process, or on every rank under torchrun (DDP). Bad settings and inputs raise
    InputError before anything is written; a failed write raises InputError and keeps older files.
    """
    ctx = DistributedContext.from_env(config.device)
    if not ctx.is_main:
        return _finetune(config, ctx, tracker or SilentTracker())
    with new_folder(config.out, "the --out folder"):  # a run that fails at once leaves no empty folder
        return _finetune(config, ctx, tracker or SilentTracker())
