"""Specification of `nc-audit finetune`: the loss it optimises, its files, few-shot, anchors, adapters, errors.

Reference runs are written out by hand here (Adam, the seeded permutation, the losses of
nc_audit.train.losses) so the library is checked against the definition, not against itself.
"""

from __future__ import annotations

import errno
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import h5py
import numpy as np
import pytest
import safetensors.torch
import torch
import typer
from conftest import MLP_HIDDEN, mlp_checkpoint
from runs import assert_bad_input
from typer.testing import CliRunner, Result

from nc_audit.core.errors import InputError
from nc_audit.core.formats import TRAIN_FORMAT
from nc_audit.io.checkpoints.load import Head, load_checkpoint
from nc_audit.io.data.datasets import load_dataset
from nc_audit.measurement.api import measure
from nc_audit.measurement.compute import metrics_from_arrays
from nc_audit.models.hooks import forward_with_features
from nc_audit.models.registry import build_model, load_weights
from nc_audit.train import FinetuneConfig, finetune
from nc_audit.train.anchors import load_anchors
from nc_audit.train.data import derived_seed, stratified_subset
from nc_audit.train.losses import cma_loss

HIDDEN = MLP_HIDDEN
pytestmark = pytest.mark.usefixtures("one_thread")


def cli_app() -> typer.Typer:
    from nc_audit.cli.finetune import finetune_command

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(finetune_command)
    return app


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli_app(), [*map(str, args), "--no-progress"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits MLP trained a few epochs with plain cross-entropy (λ = 0) by finetune itself."""
    folder = tmp_path_factory.mktemp("trained")
    start = mlp_checkpoint(folder / "init.pt")
    config = FinetuneConfig(
        out=folder / "run", cma_weight=0.0, checkpoint=start, data="digits", epochs=3, lr=1e-2
    )
    return finetune(config).final_path


def config_for(checkpoint: Path, out: Path, **settings: object) -> FinetuneConfig:
    base = {"cma_weight": 0.3, "data": "digits", "epochs": 2, "lr": 1e-2, "batch_size": 16}
    base |= {"train_samples_per_class": 8, "seed": 3}
    return FinetuneConfig(out=out, checkpoint=checkpoint, **(base | settings))  # type: ignore[arg-type]


def reference_run(checkpoint: Path, config: FinetuneConfig) -> dict[str, torch.Tensor]:
    """The definition: Adam on (1 − λ)·CE + λ·CMA(features, labels, W₀), seeded stratified subset and order."""
    source = load_checkpoint(checkpoint)
    model = build_model(source.architecture)
    load_weights(model, source.state_dict, "reference")
    anchors = model.head.weight.detach().clone()  # (C, d) the initial head rows, fixed
    train = load_dataset("digits", "train")
    subset = stratified_subset(train.labels, 10, config.train_samples_per_class, config.seed)
    inputs, labels = train.inputs[subset], train.labels[subset]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    order = torch.Generator().manual_seed(derived_seed(config.seed, "order"))
    lam = config.cma_weight
    for _ in range(config.epochs):
        permutation = torch.randperm(len(labels), generator=order)
        for start in range(0, len(labels), config.batch_size):
            batch = permutation[start : start + config.batch_size]
            logits, features = forward_with_features(model, inputs[batch])
            ce = torch.nn.functional.cross_entropy(
                logits, labels[batch], label_smoothing=config.label_smoothing
            )
            loss = ce if lam == 0 else (1 - lam) * ce + lam * cma_loss(features, labels[batch], anchors)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.state_dict()


@pytest.mark.parametrize(("cma_weight", "label_smoothing"), [(0.0, 0.0), (0.3, 0.0), (0.3, 0.1)])
def test_training_follows_the_definition_of_the_loss(
    trained: Path, tmp_path: Path, cma_weight: float, label_smoothing: float
) -> None:
    config = config_for(trained, tmp_path / "run", cma_weight=cma_weight, label_smoothing=label_smoothing)
    result = finetune(config)
    weights = load_checkpoint(result.final_path).state_dict
    expected = reference_run(trained, config)
    for key, value in expected.items():
        assert torch.equal(weights[key], value), key


def test_history_epoch_checkpoints_and_final_agree(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = finetune(config_for(trained, out, mir_weight=0.05, hdr_weight=0.05))
    lines = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1, 2]
    assert lines[0]["loss"] is None and lines[2]["loss"] is not None
    for key in ("loss", "ce", "cma", "train_accuracy", "test_accuracy", "nc1", "mir", "hdr"):
        assert isinstance(lines[2][key], float), key
    assert lines[2]["reg"] != 0.0
    expected_loss = 0.7 * lines[2]["ce"] + 0.3 * lines[2]["cma"] + lines[2]["reg"]
    assert lines[2]["loss"] == pytest.approx(expected_loss, rel=1e-6)
    for epoch, line in enumerate(lines):
        payload = torch.load(out / f"epoch_{epoch:03d}.pt", weights_only=True)
        assert payload["train_format"] == TRAIN_FORMAT and payload["metrics"] == line
        assert {"optimizer", "rng", "anchors", "history"} <= set(payload)
    final = load_checkpoint(result.final_path)
    assert final.architecture == load_checkpoint(trained).architecture
    last = torch.load(out / "epoch_002.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(final.state_dict[k], last[k]) for k in last)
    # the recorded metrics are those of the trained model's features on the few-shot train subset
    model = build_model(final.architecture)
    load_weights(model, final.state_dict, "final")
    train = load_dataset("digits", "train")
    subset = stratified_subset(train.labels, 10, 8, 3)
    with torch.no_grad():
        _, features = forward_with_features(model, train.inputs[subset])
    head = Head("head", model.head.weight.double(), model.head.bias.double())
    metrics, counter = metrics_from_arrays(features, train.labels[subset], head)
    assert lines[2]["nc1"] == pytest.approx(metrics["nc1"], rel=1e-12)
    assert lines[2]["train_accuracy"] == counter.accuracy


def test_final_checkpoint_is_measurable_from_the_dataset_alone(trained: Path, tmp_path: Path) -> None:
    last = json.loads((trained.parent / "history.jsonl").read_text().splitlines()[-1])
    report = measure(trained, data="digits", cache_dir=tmp_path, device="cpu")  # as `measure --data` does
    assert report.metrics["nc1"] == pytest.approx(last["nc1"], rel=1e-6)
    assert report.details["accuracy"] == last["train_accuracy"]


def test_freeze_body_trains_the_head_only(trained: Path, tmp_path: Path) -> None:
    result = finetune(config_for(trained, tmp_path / "run", freeze_body=True))
    before, after = load_checkpoint(trained).state_dict, load_checkpoint(result.final_path).state_dict
    for key in before:
        assert torch.equal(before[key], after[key]) != key.startswith("head."), key


def test_default_anchors_are_the_initial_head_rows_and_stay_fixed(trained: Path, tmp_path: Path) -> None:
    finetune(config_for(trained, tmp_path / "run"))
    W0 = load_checkpoint(trained).state_dict["head.weight"].double()
    for epoch in (0, 2):
        payload = torch.load(tmp_path / "run" / f"epoch_{epoch:03d}.pt", weights_only=True)
        assert torch.equal(payload["anchors"], W0)
    assert not torch.equal(payload["state_dict"]["head.weight"].double(), W0)


def test_user_anchors_from_every_format_are_used(trained: Path, tmp_path: Path) -> None:
    anchors = torch.randn(10, HIDDEN[-1], dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    files = {
        "single.safetensors": lambda p: safetensors.torch.save_file({"whatever": anchors}, str(p)),
        "keyed.safetensors": lambda p: safetensors.torch.save_file(
            {"anchors": anchors, "x": anchors.clone()}, str(p)
        ),
        "a.npy": lambda p: np.save(p, anchors.numpy()),
        "a.h5": lambda p: h5py.File(p, "w").create_dataset("anchors", data=anchors.numpy()).file.close(),
    }
    for name, write in files.items():
        write(tmp_path / name)
        assert torch.equal(load_anchors(tmp_path / name, 10, HIDDEN[-1]), anchors), name
    finetune(config_for(trained, tmp_path / "run", anchors=tmp_path / "a.npy", epochs=1))
    assert torch.equal(torch.load(tmp_path / "run" / "epoch_001.pt", weights_only=True)["anchors"], anchors)


def test_anchors_of_the_wrong_shape_name_both_shapes(trained: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "bad.npy", np.ones((10, 7)))
    with pytest.raises(InputError, match=r"\(10, 7\).*\(10, 16\)"):
        load_anchors(tmp_path / "bad.npy", 10, 16)
    result = invoke(trained, "--data", "digits", "--cma-weight", "0.1", "--anchors", tmp_path / "bad.npy",
                    "--out", tmp_path / "run")  # fmt: skip
    assert_bad_input(result, "bad.npy", "(10, 7)", "(10, 16)")
    assert not (tmp_path / "run" / "history.jsonl").exists()


def test_few_shot_subsets_are_stratified_and_seeded() -> None:
    labels = torch.arange(50) % 5  # (50,) ten samples of each of five classes
    subset = stratified_subset(labels, 5, 3, seed=1)
    assert torch.equal(torch.bincount(labels[subset], minlength=5), torch.full((5,), 3))
    assert torch.equal(subset, subset.sort().values) and len(set(subset.tolist())) == 15
    assert torch.equal(subset, stratified_subset(labels, 5, 3, seed=1))
    assert not torch.equal(subset, stratified_subset(labels, 5, 3, seed=2))
    with pytest.raises(InputError, match="class 0 has only 10 train samples"):
        stratified_subset(labels, 5, 11, seed=1)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--cma-weight", "1.5"], ["--cma-weight", "[0, 1]", "1.5"]),
        (["--cma-weight", "-0.1"], ["--cma-weight", "-0.1"]),
        (["--cma-weight", "0.1", "--features", "x.h5"], ["exactly one of"]),
        (["--cma-weight", "0.1", "--train-samples-per-class", "500"], ["class 0 has only"]),
        (["--cma-weight", "0.1", "--batch-size", "0"], ["--batch-size"]),
    ],
)
def test_bad_settings_exit_2_with_one_line(
    trained: Path, tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    result = invoke(trained, "--data", "digits", "--out", tmp_path / "run", *args)
    assert_bad_input(result, *fragments)
    assert not (tmp_path / "run" / "epoch_000.pt").exists()


def test_an_existing_run_is_never_overwritten_without_resume(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    finetune(config_for(trained, out, epochs=1))
    before = (out / "history.jsonl").read_bytes()
    result = invoke(trained, "--data", "digits", "--cma-weight", "0.1", "--out", out)
    assert_bad_input(result, "already holds a fine-tuning run", "--resume")
    assert (out / "history.jsonl").read_bytes() == before


def test_a_failed_checkpoint_write_keeps_the_previous_one(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    real_save = torch.save
    calls = []

    def disk_full_on_third(obj: object, path: object, *args: object, **kwargs: object) -> None:
        calls.append(path)
        if len(calls) == 3:  # epoch_000, epoch_001, then epoch_002 fails
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full_on_third)
    result = invoke(trained, "--data", "digits", "--cma-weight", "0.2", "--epochs", "3", "--batch-size", "16",
                    "--train-samples-per-class", "8", "--lr", "0.01", "--out", out)  # fmt: skip
    assert_bad_input(result, "epoch_002.pt", "no space left on the device")
    assert sorted(p.name for p in out.iterdir()) == ["epoch_000.pt", "epoch_001.pt", "history.jsonl"]
    assert torch.load(out / "epoch_001.pt", weights_only=True)["epoch"] == 1
    assert len((out / "history.jsonl").read_text().splitlines()) == 2
    monkeypatch.setattr(torch, "save", real_save)
    resumed = invoke(trained, "--data", "digits", "--cma-weight", "0.2", "--epochs", "3", "--batch-size", "16",
                     "--train-samples-per-class", "8", "--lr", "0.01", "--out", out, "--resume")  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    assert "before" in resumed.stdout and "after" in resumed.stdout and "NC1" in resumed.stdout
    assert len((out / "history.jsonl").read_text().splitlines()) == 4


def write_feature_dump(path: Path, seed: int = 0, C: int = 4, d: int = 6) -> Path:
    """A dump as `extract` writes it: /train, /test (features, labels) and /head (weight, bias)."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(C, d))
    with h5py.File(path, "w") as handle:
        for split, n in (("train", 120), ("test", 80)):
            labels = np.arange(n) % C
            handle[f"{split}/features"] = (centres[labels] + rng.normal(size=(n, d))).astype(np.float32)
            handle[f"{split}/labels"] = labels
        handle["head/weight"] = centres + 0.5 * rng.normal(size=(C, d))
        handle["head/bias"] = rng.normal(size=C)
    return path


def test_adapter_on_cached_features_starts_as_the_dump_and_ends_measurable(tmp_path: Path) -> None:
    dump = write_feature_dump(tmp_path / "feats.h5")
    out = tmp_path / "run"
    config = FinetuneConfig(out=out, cma_weight=0.2, features=dump, epochs=3, lr=1e-2, batch_size=32)
    result = finetune(config)
    with h5py.File(dump) as handle:
        features = torch.from_numpy(handle["train/features"][()])
        labels = torch.from_numpy(handle["train/labels"][()])
        head = Head(
            "head", torch.from_numpy(handle["head/weight"][()]), torch.from_numpy(handle["head/bias"][()])
        )
    metrics, counter = metrics_from_arrays(features, labels, head)
    assert result.before["nc1"] == pytest.approx(metrics["nc1"], rel=1e-6)  # the adapter starts as identity
    assert result.before["train_accuracy"] == counter.accuracy
    assert result.after["epoch"] == 3 and result.adapted_dump == out / "final_features.h5"
    report = measure(result.adapted_dump, device="cpu")
    assert report.metrics["nc1"] == pytest.approx(result.after["nc1"], rel=1e-9)
    assert load_checkpoint(result.final_path).architecture["name"] == "adapter"


def load_experiment_script() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "scripts" / "cma_experiment.py"
    spec = importlib.util.spec_from_file_location("cma_experiment", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cma_experiment_writes_a_table_per_shot_and_weight(trained: Path, tmp_path: Path) -> None:
    script = load_experiment_script()
    samples = tmp_path / "sample_checkpoints" / "digits-mlp"
    samples.mkdir(parents=True)
    for name in ("epoch_2.pt", "epoch_10.pt", "epoch_9.pt"):
        (samples / name).touch()
    assert script.default_checkpoint(tmp_path).name == "epoch_10.pt"  # natural order, not text order
    out = tmp_path / "results.md"
    argv = ["--checkpoint", str(trained), "--out", str(out), "--shots", "2", "--weights", "0,0.1"]
    assert script.main([*argv, "--seeds", "2", "--epochs", "1"]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| 2 |")]
    assert [row.split("|")[2].strip() for row in rows] == ["0", "0.1"]
    assert all("±" in row for row in rows)
