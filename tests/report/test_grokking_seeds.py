"""Grokking steps over seeds (nc_audit.report.grokking_seeds): mean ± spread from the runs' own files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nc_audit.core.errors import InputError
from nc_audit.core.formats import GROKKING_SCHEMA
from nc_audit.report.grokking_seeds import read_run, seeds_markdown, spread_text


def _run(folder: Path, seed: int, test_step: int | None) -> Path:
    folder.mkdir()
    document = {
        "schema": GROKKING_SCHEMA,
        "config": {"seed": seed, "steps": 14000, "p": 59, "train_fraction": 0.4,
                   "model": {"name": "transformer", "d_model": 64}, "optimizer": {"weight_decay": 1.0}},
        "events": {"train_accuracy_step": 200, "test_accuracy_step": test_step,
                   "best_test_accuracy": {"step": 14000, "accuracy": 0.995}},
        "seconds": {"train": 391.6},
    }  # fmt: skip
    (folder / "trajectory.json").write_text(json.dumps(document))
    return folder


def test_mean_and_spread_of_the_event_steps(tmp_path: Path) -> None:
    runs = [
        read_run(_run(tmp_path / f"s{seed}", seed, step)) for seed, step in ((0, 11800), (1, 9200), (2, None))
    ]
    page = seeds_markdown(runs)
    assert "| 1 | 200 | 9,200 | 0.9950 | 392 s |" in page
    assert "never within 14,000" in page
    assert "Test accuracy first ≥ 0.99: 10,500 ± 1,838 (n = 2; range 9,200–11,800)." in page
    assert spread_text([]) == "no run reached it"


def test_a_folder_without_a_trajectory_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"trajectory\.json"):
        read_run(tmp_path)
    (tmp_path / "trajectory.json").write_text(json.dumps({"schema": GROKKING_SCHEMA}))
    with pytest.raises(InputError, match="missing or malformed"):
        read_run(tmp_path)
