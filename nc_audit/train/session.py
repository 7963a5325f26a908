"""Setting up a run: model, data, optimizer, anchors and RNG, fresh from a seed or resumed from DIR."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nc_audit.core.errors import InputError
from nc_audit.distributed import DistributedContext
from nc_audit.models.forward_inputs import check_forward_inputs
from nc_audit.models.input_fit import check_inputs_fit
from nc_audit.models.registry import load_weights
from nc_audit.train.anchors import head_anchors, load_anchors
from nc_audit.train.config import FinetuneConfig
from nc_audit.train.data import MemorySplit, TrainData, dataset_data, derived_seed, dump_data
from nc_audit.train.source import StartingModel, starting_model
from nc_audit.train.state import (
    RunIdentity,
    capture_rng,
    check_resumable,
    latest_checkpoint,
    prepare_out_dir,
    restore_rng,
    write_history,
)
from nc_audit.train.steps import TrainingParts


@dataclass
class Run:
    """A run in progress: what trains, on what, and how far it got."""

    config: FinetuneConfig
    ctx: DistributedContext
    start: StartingModel
    data: TrainData
    parts: TrainingParts
    order: torch.Generator  # the data-order generator: one seeded permutation per epoch
    identity: RunIdentity
    epoch: int = 0  # last completed epoch (0: nothing trained yet)
    step: int = 0  # optimizer steps taken
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: Path | None = None
    notes: list[str] = field(default_factory=list)

    def training_state(self) -> dict[str, Any]:
        """What a checkpoint needs beyond the weights to continue bit-identically."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "optimizer": self.parts.optimizer.state_dict(),
            "rng": capture_rng(self.order),
            "anchors": self.parts.anchors.detach().cpu(),
            "history": list(self.history),
            "subset": self.data.subset,
        }


def _load_data(config: FinetuneConfig, num_classes: int) -> TrainData:
    per_class = config.train_samples_per_class
    if config.features is not None:
        return dump_data(config.features, num_classes, per_class, config.seed)
    assert config.data is not None
    return dataset_data(config.data, num_classes, per_class, config.seed)


def _training_parts(config: FinetuneConfig, ctx: DistributedContext, start: StartingModel) -> TrainingParts:
    model = start.model.to(ctx.device)
    head = start.head
    if config.freeze_body:  # only the head's own parameters train
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.startswith(f"{start.head_name}."))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=config.lr)
    C, d = head.weight.shape
    anchors = load_anchors(config.anchors, C, d) if config.anchors is not None else head_anchors(head.weight)
    forward_model = ctx.wrap_model(model)
    prefix = "module." if forward_model is not model else ""
    shards = ctx.world_size if ctx.distributed else config.loss_shards
    return TrainingParts(
        model,
        forward_model,
        prefix + start.head_name,
        head,
        optimizer,
        anchors.to(ctx.device),
        config,
        shards,
    )


def _resume(run: Run) -> None:
    """Load DIR's newest complete checkpoint into ``run`` (weights, optimizer, anchors, RNG, history)."""
    config, parts = run.config, run.parts
    path, payload, skipped = latest_checkpoint(config.out)
    check_resumable(path, payload, run.identity)
    epoch = int(payload["epoch"])
    if epoch > config.epochs:
        raise InputError(f"--resume: {path} is epoch {epoch}, past --epochs {config.epochs}")
    load_weights(run.start.model, payload["state_dict"], str(path))
    parts.optimizer.load_state_dict(payload["optimizer"])
    stored = payload["anchors"].to(torch.float64)  # (C, d)
    if config.anchors is not None and not torch.equal(stored, parts.anchors.cpu()):
        raise InputError(
            f"--resume: --anchors {config.anchors} differ from the anchors the run in {path} used"
        )
    parts.anchors = stored.to(run.ctx.device)
    restore_rng(payload["rng"], run.order)
    run.epoch, run.step, run.history = epoch, int(payload["step"]), list(payload["history"])
    run.resumed_from = path
    run.notes += [f"skipped {note}" for note in skipped]
    if run.ctx.is_main:
        write_history(config.out, run.history)  # drop lines of epochs past the checkpoint


def open_run(config: FinetuneConfig, ctx: DistributedContext) -> Run:
    """Everything a run needs, at its start (seeded) or at DIR's newest complete checkpoint (--resume)."""
    shards = ctx.world_size if ctx.distributed else config.loss_shards
    if ctx.distributed and config.loss_shards != 1:
        raise InputError("--loss-shards emulates DDP ranks on one process; under torchrun leave it at 1")
    if shards > config.batch_size:
        raise InputError(f"--batch-size {config.batch_size} must be at least the {shards} ranks/shards")
    if ctx.is_main:
        prepare_out_dir(config.out, config.resume)
    torch.manual_seed(derived_seed(config.seed, "init"))
    start = starting_model(config)
    data = _load_data(config, int(start.head.weight.shape[0]))
    for split, part in (("train", data.train), ("test", data.test)):  # before any forward pass
        if config.data is not None and isinstance(part, MemorySplit):
            check_forward_inputs(start.model, part.inputs, f"{config.data} [{split}]")
            check_inputs_fit(start.model, part.inputs, f"{config.data} [{split}]")
    parts = _training_parts(config, ctx, start)
    order = torch.Generator().manual_seed(derived_seed(config.seed, "order"))
    settings = config.resume_settings() | {"data": data.spec, "features": None, "loss_shards": shards}
    identity = RunIdentity(settings, start.fingerprint, start.source, start.architecture)
    run = Run(config, ctx, start, data, parts, order, identity)
    if config.resume:
        _resume(run)
    return run
