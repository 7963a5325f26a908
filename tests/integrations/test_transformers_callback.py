"""``nc_audit.integrations.transformers.NCAuditCallback`` inside a real 20-step Hugging Face
``Trainer.train`` on a tiny BERT (padded text with attention masks): a Monitor .jsonl that ``nc-audit
track`` reads, and the metrics logged through ``Trainer.log`` (log history and every on_log callback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from nc_audit.cli import app

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from nc_audit.integrations.transformers import NCAuditCallback  # noqa: E402  (needs transformers)

# importing the framework takes several seconds on 2 cores: slow, but run by default
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]
LENGTH, CLASSES = 10, 3


class SeenLogs(transformers.TrainerCallback):
    """Stands in for a report_to integration: what on_log receives."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self.logs.append(dict(logs or {}))


def texts(n: int = 96) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        length = int(torch.randint(3, LENGTH + 1, (1,), generator=generator))
        ids = torch.zeros(LENGTH, dtype=torch.long)
        ids[:length] = torch.randint(5, 40, (length,), generator=generator) + (i % CLASSES)
        mask = (torch.arange(LENGTH) < length).long()
        rows.append({"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(i % CLASSES)})
    return rows


def trainer_for(tmp_path: Path, **callbacks: Any) -> Any:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=48, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=LENGTH, num_labels=CLASSES)  # fmt: skip
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=20, per_device_train_batch_size=12,
                                          learning_rate=5e-3, logging_steps=5, save_strategy="no", report_to=[],
                                          use_cpu=True, disable_tqdm=True, seed=0)  # fmt: skip
    return transformers.Trainer(model=transformers.BertForSequenceClassification(config), args=args,
                                train_dataset=texts(), **callbacks)  # fmt: skip


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


def test_the_attached_callback_records_and_logs_through_trainer_log(tmp_path: Path) -> None:
    seen = SeenLogs()
    trainer = trainer_for(tmp_path, callbacks=[seen])
    NCAuditCallback.attach(trainer, tmp_path / "nc.jsonl", every=5, label="bert")
    trainer.train()

    records = [json.loads(line) for line in (tmp_path / "nc.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert all(r["features"]["num_samples"] == 12 and r["features"]["feature_dim"] == 16 for r in records)
    result = CliRunner().invoke(app, ["track", str(tmp_path / "nc.jsonl"), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["records"]) == 4

    logged = [entry for entry in trainer.state.log_history if "nc_audit/nc1" in entry]
    assert [entry["step"] for entry in logged] == [5, 10, 15, 20]
    assert [entry["nc_audit/nc1"] for entry in logged] == pytest.approx(
        [r["metrics"]["nc1"] for r in records]
    )
    assert sum("nc_audit/mir" in logs for logs in seen.logs) == 4  # what report_to integrations receive
    assert sum("loss" in entry for entry in trainer.state.log_history) == 4  # the Trainer's own logs survive


def test_a_callback_given_in_the_list_appends_to_the_log_history(tmp_path: Path) -> None:
    callback = NCAuditCallback(tmp_path / "nc.jsonl", every=10)
    trainer = trainer_for(tmp_path, callbacks=[callback])
    trainer.train()
    assert [e["step"] for e in trainer.state.log_history if "nc_audit/hdr" in e] == [10, 20]
    assert trainer.model.classifier._forward_pre_hooks == {} and trainer.model._forward_pre_hooks == {}
