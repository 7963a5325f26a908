"""``nc_audit.integrations.lightning.NCAuditCallback`` inside a real 20-step ``Trainer.fit``: a Monitor
.jsonl that ``nc-audit track`` reads, and the metrics in the Trainer's logger (a CSVLogger)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import nc_audit
from nc_audit.cli import app

pl = pytest.importorskip("pytorch_lightning")
from nc_audit.integrations.lightning import NCAuditCallback  # noqa: E402  (needs pytorch_lightning)

# importing the framework takes several seconds on 2 cores: slow, but run by default
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 16), nn.ReLU())
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.01)


def test_the_callback_records_every_fifth_step_and_logs_the_metrics(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x = torch.randn(320, 10)
    y = torch.arange(320) % 4
    x += 2.0 * nn.functional.one_hot(y, 10).float()  # separable enough to learn
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    logger = pl.loggers.CSVLogger(tmp_path / "logs", name="run")
    callback = NCAuditCallback(tmp_path / "nc.jsonl", every=5, label="lit")
    trainer = pl.Trainer(max_steps=20, logger=logger, callbacks=[callback], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         accelerator="cpu", log_every_n_steps=1)  # fmt: skip
    model = Classifier()
    trainer.fit(model, loader)

    records = [json.loads(line) for line in (tmp_path / "nc.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert all(r["label"] == "lit" and r["features"]["num_samples"] == 32 for r in records)
    result = CliRunner().invoke(app, ["track", str(tmp_path / "nc.jsonl"), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [r["step"] for r in json.loads(result.stdout)["records"]] == [5, 10, 15, 20]

    with open(Path(logger.log_dir) / "metrics.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("nc_audit/nc1")]
    assert len(rows) == 4
    logged = sorted(float(row["nc_audit/nc1"]) for row in rows)
    assert logged == pytest.approx(sorted(r["metrics"]["nc1"] for r in records), rel=1e-6)
    assert model.fc._forward_pre_hooks == {}  # the hook is gone after training


def test_the_recorded_numbers_are_the_batch_measured_with_the_weights_of_its_forward(tmp_path: Path) -> None:
    """Check one record against the definition: features and head taken at the forward of step 1."""
    torch.manual_seed(1)
    x, y = torch.randn(64, 10), torch.arange(64) % 4
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)
    model = Classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = pl.Trainer(max_steps=1, logger=False, callbacks=[NCAuditCallback(tmp_path / "one.jsonl", every=1)],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, accelerator="cpu")  # fmt: skip
    trainer.fit(model, loader)
    (record,) = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    fresh = Classifier()
    fresh.load_state_dict(before)
    found = nc_audit.features(fresh, (x, y))
    expected = nc_audit.measure_arrays(found.features, y, fresh.fc.weight, fresh.fc.bias)
    assert record["step"] == 1
    assert record["metrics"]["nc1"] == pytest.approx(expected.metrics["nc1"], rel=1e-5)
    assert record["metrics"]["mir"] == pytest.approx(expected.metrics["mir"], rel=1e-5)
