"""The training callbacks record a decoder sequence classifier's features as its ``score`` head reads
them: the last non-pad token, the token whose scores are the model's logits (issue 21, item 1 for the
callbacks). A GPT-2 classifier is built locally from a config (random init, no download, no dropout so a
training-mode forward is the evaluation forward); features are compared with what ``measure``/``extract``
take from the same batch, and a real ``Trainer.train()`` with the callback gives records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.integrations.capture import HeadRecorder
from nc_audit.measurement.api import measure, measure_arrays
from nc_audit.measurement.jsonl import read_trajectory_jsonl
from nc_audit.models.extract import extract

transformers = pytest.importorskip("transformers")

# importing transformers takes several seconds on 2 cores
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]
VOCAB, LENGTH, CLASSES, PAD, ROWS = 40, 10, 3, 0, 48


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def gpt2() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=LENGTH, n_embd=16, n_layer=1, n_head=2,
                                     num_labels=CLASSES, pad_token_id=PAD, bos_token_id=1, eos_token_id=2,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # fmt: skip
    return transformers.GPT2ForSequenceClassification(config)


def llama() -> nn.Module:
    torch.manual_seed(1)
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=LENGTH,
                                      num_labels=CLASSES, pad_token_id=PAD, bos_token_id=1, eos_token_id=2)  # fmt: skip
    return transformers.LlamaForSequenceClassification(config)


def padded_text(left: bool = False) -> dict[str, torch.Tensor]:
    """Token ids padded with PAD to LENGTH (right, or left), their attention mask, and labels."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, LENGTH + 1, ROWS)
    positions = np.arange(LENGTH)[None, :]
    mask = (positions >= LENGTH - lengths[:, None]) if left else (positions < lengths[:, None])
    ids = rng.integers(3, VOCAB, (ROWS, LENGTH)) * mask
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask.astype(np.int64)),
        "labels": torch.arange(ROWS) % CLASSES,
    }


def recorded(model: nn.Module, batch: dict[str, torch.Tensor], head: str | None = None) -> torch.Tensor:
    """The features a callback's recorder keeps from one training forward of ``batch``."""
    recorder = HeadRecorder(model, head)
    model.train()
    model(**batch)
    features = recorder.features()
    recorder.remove()
    assert features is not None
    return features


@pytest.mark.parametrize(("build", "left"), [(gpt2, False), (llama, True)])
def test_the_recorder_keeps_the_features_measure_extracts_from_the_same_batch(
    build: Callable[[], nn.Module], left: bool, tmp_path: Path
) -> None:
    model = build()
    batch = padded_text(left=left)
    features = recorded(model, batch)  # (N, d): pooled, not (N, T, d)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    data = tmp_path / "text.npz"
    np.savez(data, **{key: value.numpy() for key, value in batch.items()})
    with h5py.File(extract(folder, str(data), tmp_path / "dump.h5")) as handle:
        extracted = torch.from_numpy(handle["train/features"][()])
    torch.testing.assert_close(features.float(), extracted, rtol=1e-5, atol=1e-6)
    model.eval()
    with torch.no_grad():  # an independent reading: the last real token's final hidden state
        out = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        )
        last = (torch.arange(LENGTH) * batch["attention_mask"]).argmax(-1)
        torch.testing.assert_close(features, out.hidden_states[-1][torch.arange(ROWS), last])
        torch.testing.assert_close(model.score(features), out.logits)


def test_left_padding_and_a_named_pooling_rule(tmp_path: Path) -> None:
    model = gpt2()
    batch = padded_text(left=True)
    features = recorded(model, batch)
    with torch.no_grad():
        out = model.eval()(**{k: v for k, v in batch.items() if k != "labels"}, output_hidden_states=True)
    torch.testing.assert_close(features, out.hidden_states[-1][:, -1])  # left padding: the last column
    hidden = out.hidden_states[-1]
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = recorded(model, batch, head="score@mean")
    torch.testing.assert_close(mean, (hidden * mask).sum(1) / mask.sum(1))


def test_a_head_that_reads_every_token_of_a_model_that_does_not_pool_is_refused_with_the_rule() -> None:
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.fc = nn.Linear(5, 8), nn.Linear(8, CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.tanh(self.body(x))).mean(1)

    model = Tokens().train()
    recorder = HeadRecorder(model, "fc")
    with pytest.raises(InputError, match=r"reads every token .*head='fc@last'"):
        model(torch.randn(4, 6, 5))
    recorder.clear()
    recorder.remove()
    recorder = HeadRecorder(model, "fc@mean")
    x = torch.randn(4, 6, 5)
    model(x)
    features = recorder.features()
    assert features is not None
    torch.testing.assert_close(features, torch.tanh(model.body(x)).mean(1).detach())


def test_a_trainer_run_of_a_gpt2_classifier_gives_records_measured_as_measure_would(tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    from nc_audit.integrations.transformers import NCAuditCallback

    batch = padded_text()
    rows = [{key: value[i] for key, value in batch.items()} for i in range(ROWS)]
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=ROWS,
                                          learning_rate=0.0, logging_steps=2, save_strategy="no", report_to=[],
                                          use_cpu=True, disable_tqdm=True, seed=0)  # fmt: skip
    model = gpt2()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows)
    path = tmp_path / "nc.jsonl"
    NCAuditCallback.attach(trainer, path, every=2, fail_on=[])
    trainer.train()
    records = read_trajectory_jsonl(path)
    assert [r["step"] for r in records] == [2, 4]
    assert records[0]["features"]["num_samples"] == ROWS and records[0]["features"]["feature_dim"] == 16
    folder, data = tmp_path / "model", tmp_path / "text.npz"
    model.save_pretrained(folder)  # learning rate 0: the weights of every step
    np.savez(data, **{key: value.numpy() for key, value in batch.items()})
    report = measure(folder, data=str(data), device="cpu")  # the whole batch, as every step saw it
    for key in ("nc1", "nc3", "nc4", "mir", "hdr"):
        assert records[-1]["metrics"][key] == pytest.approx(report.metrics[key], rel=1e-4, abs=1e-9), key
    result = CliRunner().invoke(app, ["track", str(path), "-q"])
    assert result.exit_code == 0, result.output


def test_a_lightning_module_wrapping_a_gpt2_classifier_gives_records(tmp_path: Path) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    from nc_audit.integrations.lightning import NCAuditCallback

    class Wrapper(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = gpt2()

        def training_step(self, batch: dict[str, torch.Tensor], index: int) -> torch.Tensor:
            return self.model(**batch).loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.0)

    batch = padded_text()
    rows = [{key: value[i] for key, value in batch.items()} for i in range(ROWS)]
    loader = torch.utils.data.DataLoader(rows, batch_size=ROWS)
    path = tmp_path / "nc.jsonl"
    module = Wrapper()
    trainer = pl.Trainer(max_steps=2, logger=False, callbacks=[NCAuditCallback(path, every=2, fail_on=[])],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, accelerator="cpu")  # fmt: skip
    trainer.fit(module, loader)
    records = read_trajectory_jsonl(path)
    assert [r["step"] for r in records] == [2]
    expected = recorded(module.model, batch)  # the inner model owns the pooling: its last non-pad tokens
    labels = batch["labels"]
    weight = module.model.score.weight.detach()
    report = measure_arrays(expected, labels, weight, None)
    assert records[0]["metrics"]["nc1"] == pytest.approx(report.metrics["nc1"], rel=1e-6)
