"""The Python API as a user calls it: ``nc_audit.measure(model, loader)``, ``nc_audit.measure_arrays``,
``nc_audit.features``, with the CLI's options (``fail_on`` and ``baseline`` included) — and
``import nc_audit`` staying cheap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DumpWriter
from reference import Problem, reference_metrics

import nc_audit
from nc_audit.core.errors import InputError
from nc_audit.io.data.datasets import load_dataset
from nc_audit.models.registry import architecture_record, build_model


@pytest.fixture(scope="module")
def digits_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(architecture_record("mlp", {"input_dim": 64, "hidden": [16]}, 10)).eval()


def loader(split: str, batch: int = 200) -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = load_dataset("digits", split)
    return list(data.batches(batch))


def test_import_nc_audit_is_cheap_and_the_api_is_lazy() -> None:
    code = "import sys, nc_audit; print('torch' in sys.modules); print(sorted(nc_audit.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "False"
    assert "measure" in out and "measure_arrays" in out and "features" in out


def test_nc_audit_measure_is_a_plain_function_whatever_was_imported_before(tmp_path: Path) -> None:
    """The API names are plain functions, not packages: importing the measuring modules first changes
    nothing (a package and a function of one name confused IDEs and type checkers)."""
    code = (
        "import inspect, nc_audit, nc_audit.measurement.monitor, numpy as np\n"
        "assert inspect.isfunction(nc_audit.measure) and inspect.isfunction(nc_audit.measure_trajectory)\n"
        "r = nc_audit.measure_arrays(np.eye(3)[[0,1,2,0,1,2]] + 0.1*np.arange(6)[:,None], "
        "np.array([0,1,2,0,1,2]), np.eye(3))\n"
        "print(callable(nc_audit.measure), r.metrics['nc4'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "True"


def test_measure_a_module_and_a_loader_equals_measure_of_its_extracted_dump(
    digits_model: torch.nn.Module, tmp_path: Path
) -> None:
    from nc_audit.io.checkpoints.save import save_checkpoint

    record = architecture_record("mlp", {"input_dim": 64, "hidden": [16]}, 10)
    path = save_checkpoint(tmp_path / "m.pt", digits_model.state_dict(), record)
    report = nc_audit.measure(digits_model, loader("train"))
    by_file = nc_audit.measure(path, data="digits", cache_dir=tmp_path, device="cpu")
    assert report.metrics == pytest.approx(by_file.metrics, rel=1e-9, abs=1e-12)
    assert report.checkpoint["head"] == "head" and report.checkpoint["model"] == "MLP"
    # splits of loaders: held-out decisions with the train means, or the test split's own means
    both = {"train": loader("train"), "test": loader("test")}
    held_out = nc_audit.measure(digits_model, both, split="test")
    assert held_out.features["means_split"] == "train" and held_out.features["split"] == "test"
    own = nc_audit.measure(digits_model, both, split="test", means_split="test")
    alone = nc_audit.measure(digits_model, loader("test"))
    assert own.metrics == pytest.approx(alone.metrics, rel=1e-9, abs=1e-12)


def test_measure_arrays_equals_the_reference_and_gates(random_problem: Problem) -> None:
    p = random_problem
    report = nc_audit.measure_arrays(p.features, p.labels, p.W, p.b)
    expected = reference_metrics(p.features, p.labels, p.W, p.b)
    for key in ("nc1", "nc2_equinorm_means", "nc3", "nc4", "mir", "hdr"):
        assert report.metrics[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), key
    tensors = nc_audit.measure_arrays(torch.from_numpy(p.features), torch.from_numpy(p.labels),
                                      torch.from_numpy(p.W), torch.from_numpy(p.b))  # fmt: skip
    assert tensors.metrics == report.metrics
    gated = nc_audit.measure_arrays(p.features, p.labels, p.W, p.b, fail_on=["nc1<=1e-9", "nc4<=1"])
    assert [check.passed for check in gated.checks] == [False, True] and not gated.passed
    with pytest.raises(InputError, match="unknown metric 'nc9'"):
        nc_audit.measure_arrays(p.features, p.labels, p.W, p.b, fail_on=["nc9<=1"])


def test_fail_on_and_baseline_on_a_checkpoint(
    random_checkpoint: Path, random_dump: Path, tmp_path: Path
) -> None:
    report = nc_audit.measure(random_checkpoint, features=random_dump, fail_on="nc1>=0")
    assert report.passed and report.checks[0].rule == "nc1 >= 0"
    baseline = tmp_path / "base.json"
    baseline.write_text(json.dumps(report.to_dict()))
    again = nc_audit.measure(random_checkpoint, features=random_dump, baseline=baseline)
    assert again.passed and any(check.rule.startswith("baseline nc1") for check in again.checks)


def test_features_of_a_module_are_the_heads_input(digits_model: torch.nn.Module) -> None:
    data = load_dataset("digits", "test")
    found = nc_audit.features(digits_model, data.inputs[:50])
    expected = digits_model.body(data.inputs[:50])
    torch.testing.assert_close(found.features, expected)
    torch.testing.assert_close(found.logits, digits_model.head(expected))
    assert found.labels is None
    whole = nc_audit.features(digits_model, loader("test", 100))
    assert whole.features.shape == (len(data), 16) and torch.equal(whole.labels, data.labels)
    dict_batches = [{"x": x, "labels": y} for x, y in loader("test", 100)]

    class Keyword(torch.nn.Module):  # a model that takes keyword inputs, as Hugging Face models do
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"logits": self.inner(x)}

    keyword = nc_audit.features(Keyword(digits_model), dict_batches)
    torch.testing.assert_close(keyword.features, whole.features)
    assert torch.equal(keyword.labels, data.labels)


def test_measure_arrays_keeps_float64_features(write_dump: DumpWriter, random_problem: Problem) -> None:
    """Arrays are measured as given (no float32 round trip): the same as the float64 dump on disk."""
    p = random_problem
    from_file = nc_audit.measure(write_dump(p))
    from_arrays = nc_audit.measure_arrays(p.features.astype(np.float64), p.labels, p.W, p.b)
    assert from_arrays.metrics == pytest.approx(from_file.metrics, rel=1e-13, abs=1e-15)
