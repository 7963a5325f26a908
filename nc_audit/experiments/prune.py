"""Magnitude pruning, measured: for each sparsity, prune a checkpoint, optionally fine-tune, and measure it.

Which weights are pruned and how the masks are chosen: nc_audit.models.pruning (the weights of every
nn.Linear / nn.Conv module, the head left dense by default; ``global`` or per-``layer`` ranking of |w|;
exactly round(s·n) weights pruned). Each sparsity starts again from the checkpoint's own weights. With
``finetune_epochs`` > 0 every model (sparsity 0 too: the control) is fine-tuned on the data's train split with its masks kept
(nc_audit.train.masked). The pruned (and fine-tuned) model is written as DIR/sparsity_S.pt — a
self-describing checkpoint with the original's architecture record — and measured by ``measure`` itself
on ``split`` (default train; class means from train, Papyan's protocol), plus its accuracy on the test
split when the data has one. So sparsity 0 without fine-tuning is exactly ``measure CHECKPOINT --data``.

Records are resumable like every study (nc_audit.experiments.studies.records: DIR/study.json +
DIR/runs.jsonl); the document is written to DIR/pruning.json (schema ``nc-audit-pruning/1``).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.core.formats import PRUNING_SCHEMA
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.core.version import __version__
from nc_audit.experiments.studies.records import OnRecord, Run, StudyRecords, json_text, plain, run_study
from nc_audit.io.checkpoints.load import file_sha256
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.data.datasets import dataset_splits, load_dataset
from nc_audit.io.guards.atomic import atomic_write_text
from nc_audit.measurement.api import measure
from nc_audit.measurement.options import MeasureOptions
from nc_audit.models.pruning import SCOPES, apply_masks, magnitude_masks, prunable_weights
from nc_audit.models.spec import NO_MODEL, ModelSpec
from nc_audit.train.masked import finetune_with_masks

KIND = "prune"
DEFAULT_SPARSITIES = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
RESULT_NAME = "pruning.json"


@dataclass(frozen=True)
class PruneSettings:
    """How to prune and measure (the CLI flag of each field has the same name)."""

    sparsities: tuple[float, ...] = DEFAULT_SPARSITIES
    scope: str = "global"
    include_head: bool = False
    finetune_epochs: int = 0
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    split: str = "train"

    def validate(self) -> None:
        if not self.sparsities:
            raise InputError("--sparsities: give at least one sparsity")
        for sparsity in self.sparsities:
            if not (math.isfinite(sparsity) and 0.0 <= sparsity < 1.0):
                raise InputError(f"--sparsities: every sparsity must lie in [0, 1), got {sparsity}")
        if len(set(self.sparsities)) != len(self.sparsities):
            raise InputError(f"--sparsities: each sparsity once, got {list(self.sparsities)}")
        if self.scope not in SCOPES:
            raise InputError(f"--scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if self.finetune_epochs < 0 or self.batch_size < 1 or not (self.lr > 0.0) or self.seed < 0:
            raise InputError(
                "--finetune-epochs, --batch-size, --lr and --seed must be non-negative / positive"
            )


def checkpoint_name(sparsity: float) -> str:
    return f"sparsity_{sparsity:.3f}.pt"


@dataclass(frozen=True)
class PruneSource:
    """What every run needs: the checkpoint, the data, how to rebuild the model, where to measure."""

    checkpoint: Path
    data: str
    model: ModelSpec
    out: Path
    cache: Path


def prune_one(
    source: PruneSource, settings: PruneSettings, sparsity: float, tracker: Tracker
) -> dict[str, Any]:
    """Prune (and fine-tune) a fresh copy of the checkpoint's model at ``sparsity``, save and measure it."""
    device = source.model.torch_device()
    loaded = source.model.load(source.checkpoint)
    model = loaded.model.to(device)
    weights = prunable_weights(model, loaded.head_name, settings.include_head)
    masks = magnitude_masks(weights, sparsity, settings.scope)
    pruned = apply_masks(weights, masks)
    losses: list[float] = []
    if settings.finetune_epochs > 0:  # sparsity 0 too: the control, fine-tuned without pruning
        train = load_dataset(source.data, "train")
        by_weight = {weights[name]: masks[name] for name in weights}
        losses = finetune_with_masks(model, train, by_weight, epochs=settings.finetune_epochs, lr=settings.lr,
                                     batch_size=settings.batch_size, seed=settings.seed, device=device,
                                     tracker=tracker)  # fmt: skip
    path = source.out / checkpoint_name(sparsity)
    meta = {"dataset": source.data, "pruning": {"sparsity": sparsity, "scope": settings.scope,
            "include_head": settings.include_head, "finetune_epochs": settings.finetune_epochs,
            "source": str(source.checkpoint)}}  # fmt: skip
    save_checkpoint(path, model.cpu().state_dict(), loaded.architecture, meta)
    spec = source.model
    options = MeasureOptions(data=source.data, model=spec.factory, model_args=spec.arg_texts,
                             head=loaded.head_name, cache_dir=source.cache, device=spec.device)  # fmt: skip
    report = measure(path, replace(options, split=settings.split), tracker=tracker)
    test_accuracy = None
    if settings.split != "test" and "test" in dataset_splits(source.data):
        test_accuracy = measure(path, replace(options, split="test"), tracker=tracker).details["accuracy"]
    total, kept = sum(t.total for t in pruned), sum(t.kept for t in pruned)
    return {
        "sparsity": sparsity,
        "kept": {
            "total": total,
            "kept": kept,
            "fraction": kept / total,
            "tensors": [asdict(t) for t in pruned],
        },
        "checkpoint": str(path),
        "finetune_losses": losses,
        "accuracy": report.details["accuracy"],
        "test_accuracy": test_accuracy,
        "report": report.to_dict(),
    }


def run_pruning(
    checkpoint: Path | str,
    data: str,
    out: Path | str,
    settings: PruneSettings | None = None,
    *,
    model: ModelSpec = NO_MODEL,
    resume: bool = False,
    tracker: Tracker | None = None,
    on_record: OnRecord | None = None,
) -> dict[str, Any]:
    """Prune ``checkpoint`` at every sparsity and measure it on ``data`` (see the module docstring);
    ``model``: the factory, its arguments, the head and the device. Returns the document also written
    to DIR/pruning.json."""
    settings = settings or PruneSettings()
    settings.validate()
    tracker = tracker or SilentTracker()
    checkpoint, out = Path(checkpoint), Path(out)
    model.torch_device()  # so does a device that is not there
    load_dataset(data, settings.split)  # an unknown dataset or split fails before anything is written
    if settings.finetune_epochs > 0:
        load_dataset(data, "train")
    loaded = model.load(checkpoint)  # so does a bad checkpoint: no study.json left
    prunable_weights(loaded.model, loaded.head_name, settings.include_head)
    del loaded
    identity = {**plain(asdict(settings)), "checkpoint": str(checkpoint.resolve()),
                "checkpoint_sha256": file_sha256(checkpoint), "data": data, "model": model.factory,
                "model_args": list(model.arg_texts), "head": model.head}  # fmt: skip
    records = StudyRecords.open(out, KIND, identity, resume)
    with tempfile.TemporaryDirectory(prefix=".nc-audit-cache-", dir=out) as cache:
        source = PruneSource(checkpoint, data, model, out, Path(cache))
        runs = [
            Run(f"sparsity={s:g}", f"sparsity {s:g}", partial(prune_one, source, settings, s))
            for s in settings.sparsities
        ]
        results = run_study(records, runs, tracker, on_record)
    document = {
        "schema": PRUNING_SCHEMA,
        "nc_audit_version": __version__,
        "checkpoint": {"path": str(checkpoint), "sha256": identity["checkpoint_sha256"]},
        "data": data,
        "settings": records.settings,
        "targets": results[0]["report"]["targets"],
        "records": results,
        "notes": records.notes,
    }
    atomic_write_text(out / RESULT_NAME, json_text(document))
    return document
