"""`interpolate` on BatchNorm models: two epochs of one run (their ``num_batches_tracked`` differ) of the
built-in MLP and CNN with ``batch_norm=True``. Integer buffers come from A; at interior α the running
statistics are recomputed on the train data (reset BN, as ``torch.optim.swa_utils.update_bn`` does);
α = 0 and 1 keep the saved statistics and equal ``measure`` of the endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.optim.swa_utils import update_bn

from nc_audit.experiments.interpolate import interpolated_state, run_interpolation
from nc_audit.io.checkpoints.load import Head, load_checkpoint
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.data.datasets import load_dataset
from nc_audit.measurement.api import measure
from nc_audit.measurement.compute import metrics_from_arrays
from nc_audit.models.hooks import forward_with_features
from nc_audit.models.registry import architecture_record, build_model
from nc_audit.models.spec import ModelSpec
from nc_audit.train import FinetuneConfig, finetune

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = {
    "mlp": ("digits", {"input_dim": 64, "hidden": [24, 16], "batch_norm": True}),
    "cnn": (
        "digits:layout=image",
        {"in_channels": 1, "image_size": 8, "channels": [4], "feature_dim": 16, "batch_norm": True},
    ),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def epochs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, str]:
    """Epochs 1 and 2 of one fine-tuning run of a BatchNorm model: (A, B, dataset spec)."""
    name = request.param
    data, config = CASES[name]
    folder = tmp_path_factory.mktemp(f"bn_{name}")
    torch.manual_seed(0)
    record = architecture_record(name, config, 10)
    assert record["config"]["batch_norm"] is True
    start = save_checkpoint(folder / "start.pt", build_model(record).state_dict(), record)
    finetune(FinetuneConfig(out=folder / "run", cma_weight=0.0, checkpoint=start, data=data, epochs=2,
                            batch_size=128, lr=0.01))  # fmt: skip
    return folder / "run" / "epoch_001.pt", folder / "run" / "epoch_002.pt", data


def test_a_model_without_batch_norm_keeps_its_record_unchanged() -> None:
    """Old checkpoints still load: batch_norm is left out of records at its default."""
    record = architecture_record("mlp", {"input_dim": 64}, 10)
    assert "batch_norm" not in record["config"]
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in build_model(record).modules())


def test_endpoints_equal_measure_and_the_middle_recomputes_batch_norm(
    epochs: tuple[Path, Path, str], tmp_path: Path
) -> None:
    a, b, data = epochs
    counters = [load_checkpoint(p).state_dict for p in (a, b)]
    tracked = [key for key in counters[0] if key.endswith("num_batches_tracked")]
    assert tracked and all(not torch.equal(counters[0][k], counters[1][k]) for k in tracked)

    result = run_interpolation(a, b, data, steps=3, model=ModelSpec(device="cpu"))
    assert [r["bn_stats"] for r in result.records] == ["saved", "recomputed", "saved"]
    assert any("num_batches_tracked" in note and "taken from A" in note for note in result.notes)
    assert any("recomputed" in note for note in result.notes)
    for record, path in ((result.records[0], a), (result.records[-1], b)):
        report = measure(path, data=data, split="train", cache_dir=tmp_path, device="cpu")
        for key, value in report.metrics.items():
            assert record["metrics"][key] == pytest.approx(value, rel=1e-10, abs=1e-10), key

    # α = 0.5 by hand: interpolated weights, then torch's own update_bn over the train batches of 512
    checkpoint = load_checkpoint(a)
    model = build_model(checkpoint.architecture)
    model.load_state_dict(interpolated_state(counters[0], counters[1], 0.5))
    naive = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    train = load_dataset(data, "train")
    update_bn([x for x, _ in train.batches(512)], model)
    model.eval()
    with torch.no_grad():
        _, features = forward_with_features(model, train.inputs)
    head = Head("head", model.head.weight.double(), model.head.bias.double())
    expected, _ = metrics_from_arrays(features, train.labels, head)
    for key, value in expected.items():
        assert result.records[1]["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    recomputed = {k: v for k, v in model.state_dict().items() if "running" in k}
    assert any(not torch.allclose(naive[k], recomputed[k]) for k in naive)  # not the interpolated stats


def test_reset_endpoints_recomputes_every_alpha(epochs: tuple[Path, Path, str]) -> None:
    a, b, data = epochs
    result = run_interpolation(a, b, data, steps=2, model=ModelSpec(device="cpu"), reset_endpoints=True)
    assert [r["bn_stats"] for r in result.records] == ["recomputed", "recomputed"]
