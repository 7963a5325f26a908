"""What every from-scratch MLP study opens first: its data's train and test splits, the architecture
record of the MLP it trains, its records folder (new, or resumed) and the folder of its checkpoints."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.experiments.studies.records import StudyRecords
from nc_audit.io.data.datasets import ArrayDataset, load_dataset
from nc_audit.models.registry import architecture_record


@dataclass(frozen=True)
class MlpStudy:
    """The opened study: its splits, the MLP's architecture record and its records."""

    train: ArrayDataset
    test: ArrayDataset
    record: dict[str, Any]
    records: StudyRecords


def open_mlp_study(
    out: Path, kind: str, data: str, hidden: Sequence[int], settings: Mapping[str, Any], resume: bool
) -> MlpStudy:
    """The study ``kind`` in ``out`` (resumed or new: StudyRecords.open), training an MLP with ``hidden``
    layers on ``data`` (InputError unless its inputs are one array); ``out/runs`` exists afterwards."""
    train, test = load_dataset(data, "train"), load_dataset(data, "test")
    if not train.input_shape:
        raise InputError(f"{data}: the {kind} study trains an MLP on one array of inputs")
    config = {"input_dim": math.prod(train.input_shape), "hidden": list(hidden), "batch_norm": True}
    record = architecture_record("mlp", config, train.num_classes)
    records = StudyRecords.open(out, kind, dict(settings), resume)
    (out / "runs").mkdir(exist_ok=True)
    return MlpStudy(train, test, record, records)
