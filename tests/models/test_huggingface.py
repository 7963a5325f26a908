"""Hugging Face classifiers as users have them: a save_pretrained folder (config.json + model.safetensors)
measured from the folder, with the real transformers (tiny models from local configs, random init).

Features are the classifier's input, checked against the model's own computation from its hidden
states; text comes as several named arrays (input_ids, attention_mask, token_type_ids) with padding.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.io.data.datasets import load_dataset
from nc_audit.measurement.api import measure
from nc_audit.models.extract import extract
from nc_audit.models.hooks import forward_with_features
from nc_audit.models.loading import load_model

transformers = pytest.importorskip("transformers")

# importing transformers takes several seconds on 2 cores: slow, but run by default
pytestmark = pytest.mark.slow
VOCAB, LENGTH, TEXT_CLASSES, IMAGE_CLASSES = 50, 12, 4, 10


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The hub is off limits: nothing may be fetched (and no cache outside tmp_path is written)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=LENGTH,
        num_labels=TEXT_CLASSES,
    )
    folder = tmp_path_factory.mktemp("hf") / "hf_bert"
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    config = transformers.ViTConfig(
        image_size=8,
        patch_size=4,
        num_channels=1,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=IMAGE_CLASSES,
    )
    folder = tmp_path_factory.mktemp("hf") / "hf_vit"
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    return folder


def padded_text(path: Path, n: int = 48, seed: int = 0) -> Path:
    """Token ids padded to LENGTH with 0, their attention mask, token types, and labels."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, LENGTH + 1, n)
    mask = (np.arange(LENGTH)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(5, VOCAB, (n, LENGTH)) * mask
    np.savez(path, input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids),
             labels=np.arange(n) % TEXT_CLASSES)  # fmt: skip
    return path


def images(path: Path, n: int = 60, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, pixel_values=rng.normal(size=(n, 1, 8, 8)).astype(np.float32), labels=np.arange(n) % 10)
    return path


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


def test_a_save_pretrained_folder_is_measured_from_the_folder(bert: Path, tmp_path: Path) -> None:
    data = padded_text(tmp_path / "text.npz")
    result = invoke("measure", bert, "--data", data, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["checkpoint"]["path"] == str(bert) and report["checkpoint"]["head"] == "classifier"
    assert report["features"]["num_classes"] == TEXT_CLASSES and report["features"]["feature_dim"] == 16
    # the weights file with its config.json beside it is the same checkpoint
    beside = measure(bert / "model.safetensors", data=str(data), device="cpu")
    assert beside.metrics == pytest.approx(report["metrics"], rel=1e-12)


def test_text_features_are_the_pooled_input_of_the_classifier_with_the_mask(
    bert: Path, tmp_path: Path
) -> None:
    data = padded_text(tmp_path / "text.npz")
    dump = extract(bert, str(data), tmp_path / "bert.h5")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        bert, local_files_only=True
    ).eval()
    arrays = dict(np.load(data))
    ids, mask = torch.from_numpy(arrays["input_ids"]), torch.from_numpy(arrays["attention_mask"])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids),
                    output_hidden_states=True)  # fmt: skip
        pooled = model.bert.pooler(out.hidden_states[-1])  # tanh(W·h_[CLS] + b): BERT's pooled output
        unmasked = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][:, 0]
    with h5py.File(dump) as handle:
        features = torch.from_numpy(handle["train/features"][()])
        logits = torch.from_numpy(handle["train/logits"][()])
    torch.testing.assert_close(features, pooled, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, out.logits, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(unmasked, out.hidden_states[-1][:, 0], atol=1e-4)  # the mask matters


def test_vit_folder_loads_with_renamed_keys_and_features_are_the_cls_token(vit: Path, tmp_path: Path) -> None:
    data = images(tmp_path / "images.npz")
    loaded = load_model(vit)
    assert loaded.head_name == "classifier" and loaded.num_classes == IMAGE_CLASSES
    inputs = load_dataset(str(data)).inputs
    assert isinstance(inputs, dict) and set(inputs) == {"pixel_values"}  # a named array: a keyword input
    pixels = inputs["pixel_values"]
    model = loaded.model
    with torch.no_grad():
        _, features = forward_with_features(model, {"pixel_values": pixels}, loaded.head_name)
        hidden = model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(features, model.vit.layernorm(hidden)[:, 0], rtol=1e-5, atol=1e-6)
    report = measure(vit, data=str(data), device="cpu")
    assert report.checkpoint["head"] == "classifier" and report.features["num_classes"] == IMAGE_CLASSES


def test_vit_weights_alone_pick_the_head_with_as_many_rows_as_the_labels_have_classes(
    vit: Path, tmp_path: Path
) -> None:
    """Without config.json, eight weights of the ViT fit d as well as classifier.weight (10, d); the
    labels' 10 classes pick the classifier."""
    data = images(tmp_path / "images.npz")
    dump = extract(vit, str(data), tmp_path / "vit.h5")
    with h5py.File(dump) as source, h5py.File(tmp_path / "plain.h5", "w") as plain:
        plain["features"] = source["train/features"][()]
        plain["labels"] = source["train/labels"][()]
    alone = tmp_path / "vit.safetensors"
    shutil.copy(vit / "model.safetensors", alone)
    result = invoke("measure", alone, "--features", tmp_path / "plain.h5", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checkpoint"]["head"] == "classifier"


def test_a_factory_returning_a_transformers_model_has_its_logits_unwrapped(
    bert: Path, tmp_path: Path
) -> None:
    """A user factory building an AutoModel from its config; the state dict saved with torch.save."""
    (tmp_path / "hf_factory.py").write_text(
        "import transformers\n"
        "def build(folder):\n"
        "    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)\n"
        "    return transformers.AutoModelForSequenceClassification.from_config(config)\n"
    )
    model = transformers.AutoModelForSequenceClassification.from_pretrained(bert, local_files_only=True)
    torch.save(model.state_dict(), tmp_path / "bert.pt")
    data = padded_text(tmp_path / "text.npz")
    result = invoke("measure", tmp_path / "bert.pt", "--data", data, "--model", f"{tmp_path / 'hf_factory.py'}:build",
                    "--model-arg", f"folder={bert}", "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    from_folder = measure(bert, data=str(data), device="cpu")
    assert json.loads(result.stdout)["metrics"] == pytest.approx(from_folder.metrics, rel=1e-9)


def test_finetuning_a_folder_records_the_model_so_measure_needs_no_model(bert: Path, tmp_path: Path) -> None:
    data = padded_text(tmp_path / "text.npz")
    result = invoke("finetune", bert, "--data", data, "--cma-weight", "0.1", "--epochs", "1",
                    "--batch-size", "16", "--out", tmp_path / "ft")  # fmt: skip
    assert result.exit_code == 0, result.output
    record = torch.load(tmp_path / "ft" / "final.pt", weights_only=True)["architecture"]
    assert record["name"] == "huggingface" and record["config"]["class"] == "BertForSequenceClassification"
    measured = invoke("measure", tmp_path / "ft" / "final.pt", "--data", data, "--format", "json")
    assert measured.exit_code == 0, measured.output
    history = [json.loads(line) for line in (tmp_path / "ft" / "history.jsonl").read_text().splitlines()]
    assert json.loads(measured.stdout)["metrics"]["nc1"] == pytest.approx(history[-1]["nc1"], rel=1e-6)


def test_without_transformers_a_folder_names_the_extra_to_install(
    bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed
    with pytest.raises(InputError, match=r"pip install 'nc-audit\[hf\]'"):
        load_model(bert)
