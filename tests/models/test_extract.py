"""`extract`: a checkpoint and a dataset in, an HDF5 feature dump out (docs/DESIGN.md, "Files nc-audit reads and writes").

The dump must hold exactly what a forward pass by hand gives: features = the head's input,
logits = features @ W.T + b, the head itself, and attributes that say where it all came from.
Whatever goes wrong while writing, no file that looks complete is left at the target name.
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import nc_audit.models.extract as extract_module
from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.data.datasets import load_dataset
from nc_audit.measurement.api import measure
from nc_audit.models.builtins import MLP, ModMLP, SmallCNN
from nc_audit.models.extract import extract
from nc_audit.models.loading import load_model
from nc_audit.models.registry import architecture_record, build_model
from nc_audit.models.spec import ModelSpec

FLOAT32 = {"rtol": 1e-5, "atol": 1e-5}


def mlp_features(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    assert isinstance(model, MLP)
    return model.body(inputs)  # (N, hidden[-1]); Flatten is the body's first layer


def cnn_features(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    assert isinstance(model, SmallCNN)
    return model.body(inputs)  # inputs (N, 1, 8, 8) from digits:layout=image


def modmlp_features(model: nn.Module, pairs: torch.Tensor) -> torch.Tensor:
    assert isinstance(model, ModMLP)
    return model.body(model.embed(pairs).flatten(1))  # (N, hidden): both operand embeddings side by side


@dataclass(frozen=True)
class Case:
    """A built-in architecture on a dataset it fits, and its features computed by hand."""

    arch: str
    config: dict[str, Any]
    num_classes: int
    data: str
    canonical: str
    by_hand: Callable[[nn.Module, torch.Tensor], torch.Tensor]


CASES = {
    "mlp": Case(
        "mlp", {"input_dim": 64, "hidden": [32, 16]}, 10, "digits", "digits:layout=flat", mlp_features
    ),
    "cnn": Case(
        "cnn",
        {"in_channels": 1, "image_size": 8, "channels": [4], "feature_dim": 12},
        10,
        "digits:layout=image",
        "digits:layout=image",
        cnn_features,
    ),
    "modmlp": Case(
        "modmlp",
        {"p": 11, "embed_dim": 6, "hidden": 20},
        11,
        "modadd:p=11",
        "modadd:p=11,seed=0,train_fraction=0.4",
        modmlp_features,
    ),
}


def save_model(
    folder: Path, case: Case, suffix: str = ".pt", seed: int = 0, name: str = "model"
) -> tuple[nn.Module, Path]:
    """A freshly initialised built-in model and its self-describing checkpoint (save_checkpoint)."""
    torch.manual_seed(seed)
    record = architecture_record(case.arch, case.config, case.num_classes)
    model = build_model(record).eval()
    path = save_checkpoint(folder / f"{name}{suffix}", model.state_dict(), record, {"step": 7})
    return model, path


@dataclass(frozen=True)
class Extracted:
    case: Case
    model: nn.Module
    checkpoint: Path
    dump: Path


@pytest.fixture(
    scope="module",
    params=[(arch, suffix) for arch in CASES for suffix in (".pt", ".safetensors")],
    ids=lambda p: f"{p[0]}{p[1]}",
)
def extracted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Extracted:
    """Every built-in architecture, saved as .pt and as .safetensors, extracted on its dataset."""
    arch, suffix = request.param
    folder = tmp_path_factory.mktemp(f"{arch}-{suffix[1:]}")
    model, checkpoint = save_model(folder, CASES[arch], suffix)
    dump = extract(checkpoint, CASES[arch].data, folder / "features.h5")
    return Extracted(CASES[arch], model, checkpoint, dump)


def read(dump: Path, key: str) -> np.ndarray:
    with h5py.File(dump, "r") as handle:
        return handle[key][...]


# --- what the dump holds ---------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["train", "test"])
def test_features_and_logits_equal_a_forward_pass_by_hand(extracted: Extracted, split: str) -> None:
    dataset = load_dataset(extracted.case.data, split)
    model = extracted.model
    with torch.no_grad():
        features = extracted.case.by_hand(model, dataset.inputs).double()  # (N, d)
        logits = features @ model.head.weight.double().T + model.head.bias.double()  # (N, C)
    assert read(extracted.dump, f"{split}/features").dtype == np.float32
    np.testing.assert_allclose(read(extracted.dump, f"{split}/features"), features.numpy(), **FLOAT32)
    np.testing.assert_allclose(read(extracted.dump, f"{split}/logits"), logits.numpy(), **FLOAT32)
    np.testing.assert_array_equal(read(extracted.dump, f"{split}/labels"), dataset.labels.numpy())


def test_the_dump_holds_the_models_head(extracted: Extracted) -> None:
    head = extracted.model.head
    np.testing.assert_array_equal(read(extracted.dump, "head/weight"), head.weight.detach().double().numpy())
    np.testing.assert_array_equal(read(extracted.dump, "head/bias"), head.bias.detach().double().numpy())
    with h5py.File(extracted.dump, "r") as handle:
        assert handle["head"].attrs["name"] == "head"


def test_attributes_name_the_checkpoint_bytes_and_the_canonical_dataset(extracted: Extracted) -> None:
    with h5py.File(extracted.dump, "r") as handle:
        attrs = {
            key: value.decode() if isinstance(value, bytes) else value for key, value in handle.attrs.items()
        }
    assert attrs["format"] == "nc-audit-features/1"
    assert attrs["checkpoint_sha256"] == hashlib.sha256(extracted.checkpoint.read_bytes()).hexdigest()
    assert attrs["dataset"] == extracted.case.canonical == load_dataset(extracted.case.data).spec
    assert attrs["checkpoint_path"] == str(extracted.checkpoint)
    assert attrs["step"] == "7"
    assert str(attrs["created_by"]).startswith("nc-audit ")


def test_batch_size_does_not_change_the_dump(tmp_path: Path) -> None:
    _, checkpoint = save_model(tmp_path, CASES["mlp"])
    one = extract(checkpoint, "digits", tmp_path / "b2048.h5", batch_size=2048)  # one batch per split
    other = extract(checkpoint, "digits", tmp_path / "b200.h5", batch_size=200)  # a short last batch
    for key in ("train/features", "train/logits", "test/features"):
        np.testing.assert_allclose(read(other, key), read(one, key), **FLOAT32)
    np.testing.assert_array_equal(read(other, "train/labels"), read(one, "train/labels"))


def test_splits_selects_which_split_groups_are_written(tmp_path: Path) -> None:
    _, checkpoint = save_model(tmp_path, CASES["modmlp"])
    dump = extract(checkpoint, "modadd:p=11", tmp_path / "test-only.h5", splits=["test"])
    with h5py.File(dump, "r") as handle:
        assert sorted(handle) == ["head", "test"]
        assert handle["test/labels"].shape == (121 - round(0.4 * 121),)


def test_a_user_factory_rebuilds_a_checkpoint_that_does_not_describe_itself(tmp_path: Path) -> None:
    """A bare state dict (torch.save(model.state_dict())) plus --model file.py:factory extracts the same
    features as the built-in record would."""
    model, described = save_model(tmp_path, CASES["mlp"])
    bare = tmp_path / "bare.pt"
    torch.save(model.state_dict(), bare)
    factory = tmp_path / "my_models.py"
    factory.write_text(
        textwrap.dedent(
            """
            from nc_audit.models.builtins import MLP

            def build():
                return MLP(num_classes=10, input_dim=64, hidden=[32, 16])
            """
        )
    )
    with pytest.raises(InputError, match="--model"):
        load_model(bare)
    from_factory = extract(bare, "digits", tmp_path / "factory.h5", model=ModelSpec(f"{factory}:build"))
    from_record = extract(described, "digits", tmp_path / "record.h5")
    np.testing.assert_array_equal(read(from_factory, "train/features"), read(from_record, "train/features"))


def test_an_inner_head_gives_a_dump_whose_logits_are_that_heads_outputs(tmp_path: Path) -> None:
    """--head may name any nn.Linear (NC of an inner layer); /logits (N, C) must then be that layer's
    outputs, consistent with /head: logits = features @ W.T + b."""
    case = Case(
        "mlp", {"input_dim": 64, "hidden": [24, 16]}, 10, "digits", "digits:layout=flat", mlp_features
    )
    model, checkpoint = save_model(tmp_path, case)
    dump = extract(
        checkpoint, "digits", tmp_path / "inner.h5", model=ModelSpec(head="body.3")
    )  # Linear(24, 16)
    with torch.no_grad():
        features = model.body[:3](load_dataset("digits", "train").inputs).double()  # (N, 24)
    W, b = read(dump, "head/weight"), read(dump, "head/bias")
    assert W.shape == (16, 24)
    np.testing.assert_allclose(read(dump, "train/features"), features.numpy(), **FLOAT32)
    np.testing.assert_allclose(read(dump, "train/logits"), features.numpy() @ W.T + b, **FLOAT32)


# --- measuring a dump alone, and held-out NC4 -------------------------------------------------------------
def test_a_dump_with_its_head_is_measured_alone(extracted: Extracted) -> None:
    report = measure(extracted.dump, device="cpu")
    assert report.checkpoint["sha256"] == hashlib.sha256(extracted.checkpoint.read_bytes()).hexdigest()
    assert report.checkpoint["head"] == "head"
    assert report.features["split"] == "train"
    assert report.features["num_samples"] == len(load_dataset(extracted.case.data, "train"))


def nearest_mean_disagreement(dump: Path, means_split: str, decisions_split: str) -> float:
    """NC4 by hand: share of ``decisions_split`` rows whose argmax of W h + b differs from the nearest
    class mean, the means taken over ``means_split`` (float64, whole arrays)."""
    H_means = read(dump, f"{means_split}/features").astype(np.float64)  # (N_m, d)
    y_means = read(dump, f"{means_split}/labels")  # (N_m,)
    H = read(dump, f"{decisions_split}/features").astype(np.float64)  # (N, d)
    W, b = read(dump, "head/weight"), read(dump, "head/bias")  # (C, d), (C,)
    means = np.stack([H_means[y_means == c].mean(axis=0) for c in range(W.shape[0])])  # (C, d)
    distances = ((H[:, None, :] - means[None, :, :]) ** 2).sum(axis=2)  # (N, C)
    decided = (H @ W.T + b).argmax(axis=1)  # (N,)
    return float((decided != distances.argmin(axis=1)).mean())


def test_split_test_measures_nc4_on_held_out_samples_with_the_train_class_means(tmp_path: Path) -> None:
    _, checkpoint = save_model(tmp_path, CASES["mlp"], seed=3)
    dump = extract(checkpoint, "digits", tmp_path / "digits.h5")
    expected = nearest_mean_disagreement(dump, means_split="train", decisions_split="test")
    with_test_means = nearest_mean_disagreement(dump, means_split="test", decisions_split="test")
    assert expected != with_test_means, (
        "this model cannot tell train means from test means; pick another seed"
    )
    np.testing.assert_array_equal(
        read(dump, "test/logits").argmax(axis=1),
        (
            read(dump, "test/features").astype(np.float64) @ read(dump, "head/weight").T
            + read(dump, "head/bias")
        ).argmax(axis=1),
    )

    report = measure(dump, split="test", device="cpu")
    assert report.metrics["nc4"] == pytest.approx(expected, abs=1e-12)
    assert report.conventions["means_split"] == "train"
    assert report.conventions["decisions_split"] == "test"
    assert report.features["split"] == "test"
    assert report.features["means_split"] == "train"
    assert report.features["num_samples"] == len(load_dataset("digits", "test"))
    assert report.features["means_samples"] == len(load_dataset("digits", "train"))


# --- refusals and failures --------------------------------------------------------------------------------
def test_a_pickled_whole_model_is_refused_with_how_to_save_a_state_dict(tmp_path: Path) -> None:
    model, _ = save_model(tmp_path, CASES["mlp"])
    pickled = tmp_path / "whole-model.pt"
    torch.save(model, pickled)
    with pytest.raises(InputError, match=r"state_dict\(\)") as refused:
        extract(pickled, "digits", tmp_path / "out.h5")
    assert "whole-model.pt" in str(refused.value)
    with pytest.raises(InputError, match=r"state_dict\(\)"):
        measure(pickled, data="digits", cache_dir=tmp_path / "cache", device="cpu")
    assert not (tmp_path / "out.h5").exists()


def fail_on_second_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the extraction's forward pass raise on its second batch (the dump is then half written)."""
    real = extract_module.forward_with_features
    calls = []

    def failing(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated failure mid-extraction")
        return real(*args, **kwargs)

    monkeypatch.setattr(extract_module, "forward_with_features", failing)


def test_an_exception_mid_extraction_leaves_no_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, checkpoint = save_model(tmp_path, CASES["mlp"])
    out_folder = tmp_path / "out"
    out_folder.mkdir()
    fail_on_second_batch(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated failure"):
        extract(checkpoint, "digits", out_folder / "features.h5", batch_size=64)
    assert list(out_folder.iterdir()) == []


def test_a_failed_re_extraction_leaves_the_existing_dump_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, checkpoint = save_model(tmp_path, CASES["mlp"])
    out = extract(checkpoint, "digits", tmp_path / "features.h5")
    before = out.read_bytes()
    fail_on_second_batch(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated failure"):
        extract(checkpoint, "digits", out, batch_size=64)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.h5", "model.pt"]
