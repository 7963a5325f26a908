"""An architecture record is checked against the state dict's shapes before the model is allocated."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.models.loading import load_model
from nc_audit.models.registry import architecture_record, build_model


def test_a_record_asking_for_a_huge_model_is_refused_before_allocating(tmp_path: Path) -> None:
    record = architecture_record("mlp", {"input_dim": 64, "hidden": [128, 64]}, 10)
    state = build_model(record).state_dict()
    record["config"]["hidden"] = [30000, 30000]  # 3.6 GB of float32 weights
    path = tmp_path / "huge.pt"
    torch.save({"format": "nc-audit-checkpoint/1", "state_dict": state, "architecture": record}, path)
    started = time.monotonic()
    with pytest.raises(
        InputError,
        match=r"huge\.pt: weights do not fit the model: .*body\.1\.weight: file \(128, 64\) vs model \(30000, 64\)",
    ):
        load_model(path)
    assert time.monotonic() - started < 20  # nothing of 3.6 GB was allocated or initialised
