"""Decoder sequence classifiers (GPT-2, Llama: built locally from configs, random init, no download):
the ``score`` head reads every token and the model keeps the scores of each row's last non-pad token.
Features are that token's hidden state: checked against the model's own hidden states and logits
(score(features) == logits) and NC1 against an independent NumPy computation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from reference import reference_metrics
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.measurement.api import measure
from nc_audit.models.extract import extract

transformers = pytest.importorskip("transformers")

# importing transformers takes several seconds on 2 cores
pytestmark = pytest.mark.slow
VOCAB, LENGTH, CLASSES, PAD = 40, 10, 3, 0


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def gpt2(folder: Path, pad: int | None = PAD) -> Path:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=LENGTH, n_embd=16, n_layer=1, n_head=2,
                                     num_labels=CLASSES, pad_token_id=pad, bos_token_id=1, eos_token_id=2)  # fmt: skip
    transformers.GPT2ForSequenceClassification(config).save_pretrained(folder)
    return folder


def llama(folder: Path) -> Path:
    torch.manual_seed(1)
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=LENGTH,
                                      num_labels=CLASSES, pad_token_id=PAD, bos_token_id=1, eos_token_id=2)  # fmt: skip
    transformers.LlamaForSequenceClassification(config).save_pretrained(folder)
    return folder


def padded_text(path: Path, n: int = 60, left: bool = False) -> Path:
    """Token ids padded with PAD to LENGTH (right, or left), their attention mask, and labels."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, LENGTH + 1, n)
    positions = np.arange(LENGTH)[None, :]
    mask = (positions >= LENGTH - lengths[:, None]) if left else (positions < lengths[:, None])
    ids = rng.integers(3, VOCAB, (n, LENGTH)) * mask
    np.savez(path, input_ids=ids, attention_mask=mask.astype(np.int64), labels=np.arange(n) % CLASSES)
    return path


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


@pytest.mark.parametrize(("build", "left"), [(gpt2, False), (llama, False), (llama, True)])
def test_features_are_the_last_non_pad_token_and_the_head_gives_the_models_logits(
    build: Callable[[Path], Path], left: bool, tmp_path: Path
) -> None:
    folder = build(tmp_path / "model")
    data = padded_text(tmp_path / "text.npz", left=left)
    dump = extract(folder, str(data), tmp_path / "dump.h5")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        folder, local_files_only=True
    ).eval()
    arrays = dict(np.load(data))
    ids, mask = torch.from_numpy(arrays["input_ids"]), torch.from_numpy(arrays["attention_mask"])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        last = (torch.arange(LENGTH) * mask).argmax(-1)  # each row's last real token
        expected = out.hidden_states[-1][torch.arange(len(ids)), last]  # (N, d)
    with h5py.File(dump) as handle:
        features = torch.from_numpy(handle["train/features"][()])
        logits = torch.from_numpy(handle["train/logits"][()])
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(model.score(features), out.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, out.logits, rtol=1e-5, atol=1e-6)
    report = measure(folder, data=str(data), device="cpu")
    numpy_nc1 = reference_metrics(
        expected.double().numpy(), arrays["labels"], model.score.weight.detach().numpy()
    )
    assert report.metrics["nc1"] == pytest.approx(numpy_nc1["nc1"], rel=1e-6)


def test_a_decoder_classifier_without_pad_token_id_is_refused_before_the_forward_pass(tmp_path: Path) -> None:
    folder, data = gpt2(tmp_path / "nopad", pad=None), padded_text(tmp_path / "text.npz")
    result = invoke("measure", folder, "--data", data)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "text.npz" in line and "pad_token_id" in line and "config.json" in line and "Traceback" not in line


def test_wrong_array_names_and_wrong_modality_name_the_files_arrays_and_the_forwards_arguments(
    tmp_path: Path,
) -> None:
    folder = gpt2(tmp_path / "model")
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "tokens.npz", tokens=rng.integers(3, VOCAB, (20, LENGTH)), labels=np.arange(20) % CLASSES
    )
    np.savez(tmp_path / "images.npz", pixel_values=rng.normal(size=(20, 3, 8, 8)).astype(np.float32),
             labels=np.arange(20) % CLASSES)  # fmt: skip
    np.savez(tmp_path / "floats.npz", input_ids=rng.normal(size=(20, LENGTH)), labels=np.arange(20) % CLASSES)
    for name, array in (("tokens", "tokens (20, 10) int64"), ("images", "pixel_values (20, 3, 8, 8) float32"),
                        ("floats", "input_ids (20, 10) float32")):  # fmt: skip
        result = invoke("measure", folder, "--data", tmp_path / f"{name}.npz")
        assert result.exit_code == 2, result.output
        line = result.stderr.strip()
        assert f"{name}.npz [train]" in line and array in line, line
        assert "GPT2ForSequenceClassification.forward takes input_ids" in line and "attention_mask" in line
        assert "Traceback" not in result.output


class TokenAverager(torch.nn.Module):
    """A hand-written model whose head reads every token and whose forward averages the token scores."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(5, 8)
        self.fc = torch.nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.body(x))).mean(1)  # (N, T, C) → (N, C)


def test_a_head_reading_every_token_of_an_unknown_model_needs_pool_and_mean_is_the_token_mean(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    model = TokenAverager()
    torch.save(model.state_dict(), tmp_path / "avg.pt")
    (tmp_path / "avg_zoo.py").write_text(
        "import torch\n"
        "class TokenAverager(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.body = torch.nn.Linear(5, 8)\n"
        f"        self.fc = torch.nn.Linear(8, {CLASSES})\n"
        "    def forward(self, x):\n"
        "        return self.fc(torch.tanh(self.body(x))).mean(1)\n"
    )
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(30, 4, 5)).astype(np.float32))
    np.savez(tmp_path / "seq.npz", inputs=x.numpy(), labels=np.arange(30) % CLASSES)
    factory = f"{tmp_path / 'avg_zoo.py'}:TokenAverager"
    refused = invoke("measure", tmp_path / "avg.pt", "--model", factory, "--data", tmp_path / "seq.npz")
    assert refused.exit_code == 2, refused.output
    assert "--pool last|first|mean" in refused.stderr and "seq.npz" in refused.stderr
    assert "(2, 4, 8)" in refused.stderr  # the probe's two rows, not the whole pass
    out = tmp_path / "mean.h5"
    done = invoke("extract", tmp_path / "avg.pt", "--model", factory, "--data", tmp_path / "seq.npz",
                  "--pool", "mean", "--out", out)  # fmt: skip
    assert done.exit_code == 0, done.output
    with torch.no_grad():
        expected = torch.tanh(model.body(x)).mean(1)  # (N, d)
        logits = model(x)
    with h5py.File(out) as handle:
        torch.testing.assert_close(
            torch.from_numpy(handle["train/features"][()]), expected, rtol=1e-5, atol=1e-6
        )
        torch.testing.assert_close(torch.from_numpy(handle["train/logits"][()]), logits, rtol=1e-5, atol=1e-6)
    report = invoke("measure", tmp_path / "avg.pt", "--model", factory, "--data", tmp_path / "seq.npz",
                    "--pool", "mean", "--format", "json")  # fmt: skip
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["features"]["feature_dim"] == 8
    assert invoke("measure", tmp_path / "avg.pt", "--pool", "max", "--model", factory, "--data",
                  tmp_path / "seq.npz").exit_code == 2  # fmt: skip
