"""`interpolate`: the straight line between two checkpoints of one architecture, measured at each α."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from torch.nn.functional import cross_entropy
from typer.testing import CliRunner, Result

from nc_audit.cli.interpolate import interpolate_command
from nc_audit.core.errors import InputError
from nc_audit.experiments.interpolate import (
    INTERPOLATION_SCHEMA,
    alphas,
    check_same_architecture,
    interpolated_state,
    run_interpolation,
)
from nc_audit.io.checkpoints.load import Checkpoint
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.data.datasets import load_dataset
from nc_audit.measurement.api import measure
from nc_audit.models.hooks import forward_with_features
from nc_audit.models.loading import LoadedModel
from nc_audit.models.registry import architecture_record, build_model
from nc_audit.models.spec import ModelSpec

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def digits_checkpoint(path: Path, seed: int, hidden: tuple[int, ...] = (32,), train_steps: int = 30) -> Path:
    """A self-describing mlp checkpoint on digits, lightly trained from seed ``seed``."""
    torch.manual_seed(seed)
    record = architecture_record("mlp", {"input_dim": 64, "hidden": list(hidden)}, 10)
    model = build_model(record)
    train = load_dataset("digits", "train")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(train_steps):
        loss = cross_entropy(model(train.inputs), train.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return save_checkpoint(path, model.state_dict(), record, {"step": train_steps})


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("interp")
    return digits_checkpoint(folder / "a.pt", seed=1), digits_checkpoint(folder / "b.pt", seed=2)


def invoke(*args: str | Path) -> Result:
    app = typer.Typer()
    app.command()(interpolate_command)
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


def test_endpoints_equal_measure_of_each_checkpoint(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    records = run_interpolation(a, b, "digits", steps=3, model=ModelSpec(device="cpu")).records
    assert [r["alpha"] for r in records] == [0.0, 0.5, 1.0]
    train = load_dataset("digits", "train")
    for record, path in ((records[0], a), (records[-1], b)):
        report = measure(path, data="digits", split="train", cache_dir=tmp_path, device="cpu")
        assert set(record["metrics"]) == set(report.metrics)
        for key, value in report.metrics.items():
            assert record["metrics"][key] == pytest.approx(value, rel=1e-10, abs=1e-10), key
        assert record["accuracy"] == report.details["accuracy"]
        model = build_model(torch.load(path, weights_only=True)["architecture"])
        model.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
        with torch.inference_mode():
            logits, _ = forward_with_features(model, train.inputs)
        assert record["loss"] == pytest.approx(float(cross_entropy(logits.double(), train.labels)), rel=1e-10)
    assert records[1]["metrics"] != records[0]["metrics"]


def test_interpolated_state_mixes_floats_and_keeps_integers() -> None:
    A = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}
    B = {"w": torch.tensor([4.0, 6.0]), "n": torch.tensor(3)}
    mid = interpolated_state(A, B, 0.25)
    assert torch.equal(mid["w"], torch.tensor([1.0, 3.0])) and mid["w"].dtype == torch.float32
    assert torch.equal(mid["n"], torch.tensor(3))
    assert torch.equal(interpolated_state(A, B, 0.0)["w"], A["w"])
    assert torch.equal(interpolated_state(A, B, 1.0)["w"], B["w"])


def loaded(name: str, state: dict[str, torch.Tensor], architecture: dict | None = None) -> LoadedModel:
    return LoadedModel(
        torch.nn.Identity(), "head", Checkpoint(Path(name), "0" * 64, state, architecture), architecture
    )


@pytest.mark.parametrize(
    ("state_b", "message"),
    [
        ({"w": torch.zeros(3), "n": torch.tensor(3)}, r"tensor w has shape \(2,\) vs \(3,\)"),
        ({"v": torch.zeros(2), "n": torch.tensor(3)}, "hold different tensors"),
    ],
)
def test_incompatible_states_name_both_files(state_b: dict, message: str) -> None:
    A = loaded("first.pt", {"w": torch.zeros(2), "n": torch.tensor(3)})
    with pytest.raises(InputError, match=message) as caught:
        check_same_architecture(A, loaded("second.pt", state_b))
    assert "first.pt" in str(caught.value) and "second.pt" in str(caught.value)


def test_differing_integer_buffers_are_taken_from_a_and_named_in_a_note() -> None:
    A = loaded("first.pt", {"w": torch.zeros(2), "n": torch.tensor(3)})
    notes = check_same_architecture(A, loaded("second.pt", {"w": torch.ones(2), "n": torch.tensor(4)}))
    assert notes == ["integer buffers differ between the endpoints (n): taken from A at every α"]
    assert check_same_architecture(A, A) == []


@pytest.mark.parametrize("steps", [1, 0, -3])
def test_fewer_than_two_steps_is_an_error(steps: int) -> None:
    with pytest.raises(InputError, match="at least 2"):
        alphas(steps)


def test_cli_writes_json_plot_and_table(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    json_path, plot = tmp_path / "line.json", tmp_path / "line.png"
    result = invoke(
        a, b, "--data", "digits", "--steps", "3", "--device", "cpu", "--json", json_path, "--plot", plot
    )
    assert result.exit_code == 0, result.output
    assert "nc1" in result.stdout and "mir" in result.stdout and "NC" in result.stdout
    document = json.loads(json_path.read_text())
    assert document["schema"] == INTERPOLATION_SCHEMA
    assert set(document) >= {"nc_audit_version", "a", "b", "data", "split", "records", "targets"}
    assert (
        document["a"]["path"] == str(a)
        and document["split"] == "train"
        and document["data"] == "digits:layout=flat"
    )
    assert [set(r) for r in document["records"]] == [{"alpha", "accuracy", "loss", "metrics"}] * 3
    assert plot.read_bytes().startswith(PNG_MAGIC)
    as_json = invoke(a, b, "--data", "digits", "--steps", "2", "--split", "test", "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["split"] == "test"
    as_markdown = invoke(a, b, "--data", "digits", "--steps", "2", "--format", "markdown")
    assert as_markdown.stdout.count("\n| ") == 4  # header, two α rows, NC targets


def test_cli_mismatched_architectures_exit_2(pair: tuple[Path, Path], tmp_path: Path) -> None:
    other = digits_checkpoint(tmp_path / "wide.pt", seed=3, hidden=(48,), train_steps=0)
    result = invoke(pair[0], other, "--data", "digits")
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert line.startswith("nc-audit: error:") and "a.pt" in line and "wide.pt" in line
    assert "different architectures" in line and "Traceback" not in result.output
    assert invoke(*pair, "--data", "digits", "--steps", "1").exit_code == 2
