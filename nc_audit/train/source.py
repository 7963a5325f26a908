"""The model a fine-tuning run starts from: a checkpoint's model, or an adapter on a dump's features."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.load import Head, find_head, load_checkpoint
from nc_audit.io.dumps.reader import read_head
from nc_audit.models.adapter import build_adapter
from nc_audit.models.hooks import HeadLayer, find_head_module
from nc_audit.models.registry import architecture_record
from nc_audit.train.config import FinetuneConfig
from nc_audit.train.data import dump_feature_dim


@dataclass(frozen=True)
class StartingModel:
    """A model with its initial weights loaded, and what identifies it to ``--resume``."""

    model: nn.Module
    architecture: dict[str, Any] | None  # nc-audit-arch/1 record written into checkpoints (built-in,
    # adapter, the --model callable and its arguments, or a Hugging Face class and config)
    fingerprint: dict[str, Any]  # compared on --resume: the record, or the factory and parameter shapes
    head_name: str  # dotted module name of the classifier head inside ``model``
    source: dict[str, Any]  # {"path", "sha256"} of the checkpoint (or dump) it started from

    @property
    def head(self) -> HeadLayer:
        """The classifier head module, W (C, d) and b (C,)."""
        return find_head_module(self.model, self.head_name)[1]


def _model_fingerprint(model: nn.Module, spec: str) -> dict[str, Any]:
    """Identity of a user factory's model: its spec and every parameter's name and shape."""
    shapes = [[name, list(value.shape)] for name, value in model.state_dict().items()]
    return {"factory": spec, "parameters": shapes}


def checkpoint_model(config: FinetuneConfig) -> StartingModel:
    """The checkpoint's model (its record, a Hugging Face folder, or ``--model``) with its weights, for a
    --data run. The record of how to rebuild it goes into every checkpoint the run writes."""
    assert config.checkpoint is not None  # FinetuneConfig.validate guarantees it
    loaded = config.model_spec.load(config.checkpoint)
    architecture = loaded.architecture
    fingerprint = (
        _model_fingerprint(loaded.model, config.model) if config.model is not None else architecture or {}
    )
    if config.model_args:
        fingerprint = {**fingerprint, "args": list(config.model_args)}
    source = {"path": str(Path(config.checkpoint).resolve()), "sha256": loaded.checkpoint.sha256}
    return StartingModel(loaded.model.train(), architecture, fingerprint, loaded.head_name, source)


def _initial_head(config: FinetuneConfig, feature_dim: int) -> tuple[Head, dict[str, Any]]:
    """The head the adapter starts with: from CHECKPOINT when given, else the dump's /head."""
    assert config.features is not None
    if config.checkpoint is not None:
        checkpoint = load_checkpoint(config.checkpoint)
        head = find_head(
            checkpoint, feature_dim=feature_dim, head_name=config.head, num_classes=checkpoint.num_classes
        )
        return head, {"path": str(Path(config.checkpoint).resolve()), "sha256": checkpoint.sha256}
    stored = read_head(config.features)
    if stored is None:
        raise InputError(
            f"{config.features}: holds no /head/weight; pass the CHECKPOINT whose head the features feed"
        )
    return stored, {"path": str(Path(config.features).resolve()), "sha256": None}


def adapter_model(config: FinetuneConfig) -> StartingModel:
    """A residual adapter (identity at the start) and the initial head, for a --features run."""
    assert config.features is not None
    feature_dim = dump_feature_dim(config.features)
    head, source = _initial_head(config, feature_dim)
    if head.feature_dim != feature_dim:
        raise InputError(
            f"{config.features}: features have dimension {feature_dim} but head '{head.name}' expects "
            f"{head.feature_dim}"
        )
    model = build_adapter(head, config.adapter_hidden)
    hidden = model.body.down.out_features
    record = architecture_record("adapter", {"feature_dim": feature_dim, "hidden": hidden}, head.num_classes)
    return StartingModel(model, record, record, "head", source)


def starting_model(config: FinetuneConfig) -> StartingModel:
    """The model of a run, by kind: a checkpoint's model (--data) or an adapter (--features)."""
    return adapter_model(config) if config.features is not None else checkpoint_model(config)
