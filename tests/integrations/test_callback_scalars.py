"""The callbacks record the trainer's own training loss and learning rate (issue 21, item 6), so that
``nc-audit track runs/nc.jsonl --plot`` draws the loss and learning-rate panels; and a Monitor that takes
its gates from ``[tool.nc-audit]`` says so once. Real pytorch_lightning and transformers Trainers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from nc_audit.cli import app
from nc_audit.measurement.jsonl import read_trajectory_jsonl
from nc_audit.report.model import Trajectory
from nc_audit.report.plots import trajectory_panels

# importing the frameworks takes several seconds on 2 cores
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


def panel_titles(path: Path) -> list[str]:
    return [
        panel.title
        for panel in trajectory_panels(Trajectory.from_records(read_trajectory_jsonl(path), str(path)))
    ]


def track_plots(path: Path, tmp_path: Path) -> None:
    """``nc-audit track FILE --plot`` reads the run and writes its plot."""
    plot = tmp_path / "nc.png"
    result = CliRunner().invoke(app, ["track", str(path), "--plot", str(plot), "-q"])
    assert result.exit_code == 0, result.output
    assert plot.stat().st_size > 0


def separable(n: int = 320) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x, y = torch.randn(n, 10), torch.arange(n) % 4
    return x + 2.0 * nn.functional.one_hot(y, 10).float(), y


def test_lightning_records_the_logged_loss_and_the_scheduled_learning_rate(tmp_path: Path) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    from nc_audit.integrations.lightning import NCAuditCallback

    class Classifier(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(10, 16), nn.ReLU())
            self.fc = nn.Linear(16, 4)
            self.losses: dict[int, float] = {}

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.body(x))

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
            loss = nn.functional.cross_entropy(self(batch[0]), batch[1])
            self.log("train_loss", loss)
            self.losses[int(self.trainer.global_step) + 1] = float(loss.detach())  # the step it ends
            return loss

        def configure_optimizers(self) -> Any:
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    x, y = separable()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    path = tmp_path / "nc.jsonl"
    model = Classifier()
    trainer = pl.Trainer(max_steps=12, logger=False, callbacks=[NCAuditCallback(path, every=4, fail_on=[])],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, accelerator="cpu")  # fmt: skip
    trainer.fit(model, loader)
    records = read_trajectory_jsonl(path)
    assert [r["step"] for r in records] == [4, 8, 12]
    for record in records:
        step, metrics = record["step"], record["metrics"]
        assert metrics["train_loss"] == pytest.approx(model.losses[step], rel=1e-6)  # self.log's
        assert "loss" not in metrics  # the same number once, under the name it was logged with
        assert metrics["lr"] == pytest.approx(0.1 * 0.5 ** (step - 1))  # the rate of this step's update
    assert {"loss", "learning rate"} <= set(panel_titles(path))
    track_plots(path, tmp_path)


def test_transformers_records_the_logged_loss_and_learning_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from nc_audit.integrations.transformers import NCAuditCallback

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(10, 16), nn.ReLU())
            self.classifier = nn.Linear(16, 4)

        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
            logits = self.classifier(self.body(x))
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = nn.functional.cross_entropy(logits, labels)
            return out

    x, y = separable(240)
    rows = [{"x": x[i], "labels": y[i]} for i in range(len(y))]
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=12, per_device_train_batch_size=20,
                                          learning_rate=0.1, lr_scheduler_type="linear", logging_steps=4,
                                          save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, seed=0)  # fmt: skip
    trainer = transformers.Trainer(model=Model(), args=args, train_dataset=rows)
    path = tmp_path / "nc.jsonl"
    NCAuditCallback.attach(trainer, path, every=4, head="classifier", fail_on=[])
    trainer.train()
    records = read_trajectory_jsonl(path)
    assert [r["step"] for r in records] == [4, 8, 12]
    logged = {e["step"]: e for e in trainer.state.log_history if "loss" in e and "nc_audit/nc1" not in e}
    for record in records:
        own = logged[record["step"]]  # the Trainer's own log of that step
        assert record["metrics"]["loss"] == pytest.approx(own["loss"])
        assert record["metrics"]["lr"] == pytest.approx(own["learning_rate"])
    assert records[0]["metrics"]["lr"] > records[-1]["metrics"]["lr"]  # the linear schedule decays
    assert not any("nc_audit/loss" in e or "nc_audit/lr" in e for e in trainer.state.log_history)
    assert {"loss", "learning rate"} <= set(panel_titles(path))
    track_plots(path, tmp_path)


def test_a_callback_announces_the_project_gates_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    from nc_audit.integrations.lightning import NCAuditCallback

    (tmp_path / "pyproject.toml").write_text('[tool.nc-audit]\nfail-on = ["nc4<=1"]\n')
    monkeypatch.chdir(tmp_path)

    class Classifier(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.fc = nn.Linear(10, 16), nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(self.body(x)))

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.05)

    x, y = separable(128)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    path = tmp_path / "nc.jsonl"
    trainer = pl.Trainer(max_steps=4, logger=False, callbacks=[NCAuditCallback(path, every=2)],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, accelerator="cpu")  # fmt: skip
    trainer.fit(Classifier(), loader)
    assert capsys.readouterr().err.count("gates from pyproject.toml: nc4 <= 1") == 1
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert all(r["checks"][0]["rule"] == "nc4 <= 1" and r["passed"] for r in records)
    assert all(r["metrics"]["loss"] > 0 and r["metrics"]["lr"] == 0.05 for r in records)  # training_step's
