"""The training callbacks pass ``fail_on``, ``baseline`` and ``tolerance`` to the Monitor, which gates each
record through the one gate: a failing rule is in the .jsonl record's checks, and ``nc-audit track
runs/nc.jsonl`` exits 1 on it. Real pytorch_lightning and transformers Trainers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.measurement.api import measure_arrays
from nc_audit.measurement.jsonl import read_trajectory_jsonl

# importing the frameworks takes several seconds on 2 cores
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]
FAILING = "nc1<=1e-12"  # a batch of a few steps of training is far from collapse


@pytest.fixture(autouse=True)
def no_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no pyproject.toml gates
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def separable(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x, y = torch.randn(n, 10), torch.arange(n) % 4
    return x + 2.0 * nn.functional.one_hot(y, 10).float(), y


def track(path: Path, *options: str) -> Result:
    return CliRunner().invoke(app, ["track", str(path), "-q", *options])


def assert_gated(path: Path, rule: str = "nc1 <= 1e-12") -> None:
    """Every record holds the failing check; ``track`` exits 1 naming it, and 0 under gates of its own."""
    records = read_trajectory_jsonl(path)
    assert records
    for record in records:
        assert [(c["rule"], c["passed"]) for c in record["checks"]] == [(rule, False)]
        assert record["passed"] is False
    result = track(path)
    assert result.exit_code == 1, result.output
    assert rule in result.output
    assert track(path, "--fail-on", "nc1<=1e9").exit_code == 0


def collapsed_baseline(path: Path) -> Path:
    """A report of perfectly collapsed features (nc1 = 0) with 4 classes and width 16: every run is
    farther from collapse."""
    labels = torch.arange(40) % 4
    means = torch.eye(16)[:4] * 3.0
    report = measure_arrays(means[labels], labels, means, None)
    path.write_text(json.dumps(report.to_dict()))
    return path


def lightning_run(tmp_path: Path, **gates: Any) -> Path:
    pl = pytest.importorskip("pytorch_lightning")
    from nc_audit.integrations.lightning import NCAuditCallback

    class Classifier(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.fc = nn.Sequential(nn.Linear(10, 16), nn.ReLU()), nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.body(x))

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.05)

    x, y = separable(128)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    path = tmp_path / f"lightning-{len(list(tmp_path.glob('*.jsonl')))}.jsonl"
    trainer = pl.Trainer(max_steps=4, logger=False, callbacks=[NCAuditCallback(path, every=2, **gates)],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, accelerator="cpu")  # fmt: skip
    trainer.fit(Classifier(), loader)
    return path


def transformers_run(tmp_path: Path, **gates: Any) -> Path:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from nc_audit.integrations.transformers import NCAuditCallback

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.classifier = nn.Sequential(nn.Linear(10, 16), nn.ReLU()), nn.Linear(16, 4)

        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
            logits = self.classifier(self.body(x))
            return {"logits": logits, "loss": nn.functional.cross_entropy(logits, labels)}

    x, y = separable(80)
    rows = [{"x": x[i], "labels": y[i]} for i in range(len(y))]
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=20,
                                          learning_rate=0.05, logging_steps=2, save_strategy="no", report_to=[],
                                          use_cpu=True, disable_tqdm=True, seed=0)  # fmt: skip
    trainer = transformers.Trainer(model=Model(), args=args, train_dataset=rows)
    path = tmp_path / f"hf-{len(list(tmp_path.glob('*.jsonl')))}.jsonl"
    NCAuditCallback.attach(trainer, path, every=2, head="classifier", **gates)
    trainer.train()
    return path


def test_the_lightning_callback_gates_each_record_and_track_fails_on_it(tmp_path: Path) -> None:
    assert_gated(lightning_run(tmp_path, fail_on=[FAILING]))
    baseline = collapsed_baseline(tmp_path / "collapsed.json")
    strict = read_trajectory_jsonl(lightning_run(tmp_path, baseline=baseline, tolerance=0.0))
    assert any(
        c["metric"] == "nc1" and "baseline_distance" in c and not c["passed"] for c in strict[-1]["checks"]
    )
    lenient = lightning_run(tmp_path, baseline=baseline, tolerance=1e9)
    assert all(r["passed"] and r["checks"] for r in read_trajectory_jsonl(lenient))
    assert track(lenient).exit_code == 0


def test_the_transformers_callback_gates_each_record_and_track_fails_on_it(tmp_path: Path) -> None:
    assert_gated(transformers_run(tmp_path, fail_on=FAILING))  # one rule as a string
    baseline = collapsed_baseline(tmp_path / "collapsed.json")
    strict = transformers_run(tmp_path, baseline=str(baseline), tolerance={"nc1": 0.0})
    failed = [c for c in read_trajectory_jsonl(strict)[-1]["checks"] if not c["passed"]]
    assert [c["metric"] for c in failed][:1] == ["nc1"] and "baseline_distance" in failed[0]
    assert track(strict).exit_code == 1
