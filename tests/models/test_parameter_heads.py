"""Heads that are not an nn.Linear: a bare ``Parameter`` applied with ``F.linear`` (a cosine head) or a
matrix product (a bias-less head), named with ``--head W``; a detected head is never a guess (refused
with the candidates); class counts say which layer they come from and labels are checked against it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import h5py
import numpy as np
import pytest
import torch
from reference import reference_metrics
from torch.nn import functional
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.models.head_param import ParameterHead
from nc_audit.models.hooks import find_head_module, forward_with_features

ZOO = '''
import torch
from torch import nn
from torch.nn import functional as F

class Cosine(nn.Module):
    """A cosine classifier: s * cos(h, w_c), W a bare parameter."""
    def __init__(self, num_classes=4):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 8))
        self.W = nn.Parameter(torch.randn(num_classes, 8))
    def forward(self, x):
        return 10.0 * F.linear(F.normalize(self.body(x)), F.normalize(self.W))

class Product(nn.Module):
    """A bias-less head applied as h @ W.T (as a tied unembedding is)."""
    def __init__(self, num_classes=4):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 8), nn.Tanh())
        self.W = nn.Parameter(torch.randn(num_classes, 8))
    def forward(self, x):
        return self.body(x) @ self.W.t()

class Twice(Cosine):
    def forward(self, x):
        h = self.body(x)
        return F.linear(h, self.W) + F.linear(2 * h, self.W)

class Net(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 24), nn.ReLU(), nn.Linear(24, 24), nn.ReLU())
        self.fc = nn.Linear(24, num_classes)
    def forward(self, x):
        return self.fc(self.body(x))
'''


@pytest.fixture
def zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    (tmp_path / "head_zoo.py").write_text(ZOO)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "head_zoo", raising=False)
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    import head_zoo

    return head_zoo


def vectors(path: Path, classes: int = 4, n: int = 80) -> Path:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % classes
    np.savez(
        path,
        inputs=(rng.normal(size=(n, 10)) + 2 * np.eye(12)[labels, :10]).astype(np.float32),
        labels=labels,
    )
    return path


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


def saved(model: torch.nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


def test_a_bare_parameter_beside_the_linears_makes_detection_refuse_with_the_candidates(
    zoo: ModuleType, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    checkpoint = saved(zoo.Cosine(), tmp_path / "cos.pt")
    for extra in ((), ("--model-arg", "num_classes=4")):
        result = invoke(
            "measure", checkpoint, "--model", "head_zoo:Cosine", *extra, "--data", vectors(tmp_path / "v.npz")
        )
        assert result.exit_code == 2, result.output
        line = result.stderr.strip()
        assert "cannot be identified with certainty" in line and "--head NAME" in line
        assert "body.0 (16, 10)" in line and "body.2 (8, 16)" in line and "W (4, 8) (parameter)" in line
    with pytest.raises(
        InputError, match=r"--head V: no such module or parameter;.* W \(4, 8\) \(parameter\)"
    ):
        find_head_module(zoo.Cosine(), "V")


def test_a_cosine_head_named_by_its_parameter_is_measured_as_the_model_applies_it(
    zoo: ModuleType, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = zoo.Cosine().eval()
    checkpoint, data = saved(model, tmp_path / "cos.pt"), vectors(tmp_path / "v.npz")
    out = tmp_path / "cos.h5"
    assert (
        invoke(
            "extract", checkpoint, "--model", "head_zoo:Cosine", "--head", "W", "--data", data, "--out", out
        ).exit_code
        == 0
    )
    arrays = dict(np.load(data))
    x = torch.from_numpy(arrays["inputs"])
    with torch.no_grad():
        features = functional.normalize(model.body(x))  # the head's input: normalised
        head = functional.normalize(model.W)
        logits = model(x)
    with h5py.File(out) as handle:
        torch.testing.assert_close(
            torch.from_numpy(handle["train/features"][()]), features, rtol=1e-5, atol=1e-6
        )
        torch.testing.assert_close(
            torch.from_numpy(handle["head/weight"][()]).float(), head, rtol=1e-5, atol=1e-6
        )
        assert "cosine" in handle.attrs["head_applied"]
    result = invoke(
        "measure", checkpoint, "--model", "head_zoo:Cosine", "--head", "W", "--data", data, "--format", "json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["checkpoint"]["head"] == "W"
    assert report["conventions"]["head_applied"].startswith("cosine (features and head rows L2-normalised")
    accuracy = float((logits.argmax(1) == torch.from_numpy(arrays["labels"])).double().mean())
    assert report["details"]["accuracy"] == pytest.approx(accuracy)
    expected = reference_metrics(features.double().numpy(), arrays["labels"], head.double().numpy())
    assert report["metrics"]["nc1"] == pytest.approx(expected["nc1"], rel=1e-6)
    assert report["metrics"]["nc2_equinorm_head"] == pytest.approx(0.0, abs=1e-6)


def test_a_head_applied_as_a_matrix_product_is_followed_through_the_transpose(zoo: ModuleType) -> None:
    torch.manual_seed(1)
    model = zoo.Product().eval()
    x = torch.randn(6, 10)
    with torch.no_grad():
        logits, features = forward_with_features(model, x, "W")
        torch.testing.assert_close(features, model.body(x))
        torch.testing.assert_close(logits, features @ model.W.t())
    head = find_head_module(model, "W")[1]
    assert isinstance(head, ParameterHead)
    assert head.normalisation() == "linear" and head.out_features == 4 and head.in_features == 8


def test_a_parameter_applied_twice_is_refused(zoo: ModuleType) -> None:
    with pytest.raises(InputError, match="applied the parameter 2 times"):
        forward_with_features(zoo.Twice(), torch.randn(3, 10), "W")


def test_labels_beyond_the_head_name_the_cause_and_the_class_count_names_its_layer(
    zoo: ModuleType, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    checkpoint = saved(zoo.Net(10), tmp_path / "net.pt")
    eleven = vectors(tmp_path / "eleven.npz", classes=11, n=55)
    result = invoke("measure", checkpoint, "--model", "head_zoo:Net", "--data", eleven)
    assert result.exit_code == 2, result.output
    assert "eleven.npz [train]: labels go up to 10 but the model's head 'fc' has 10 classes" in result.stderr
    fits = invoke(
        "measure",
        checkpoint,
        "--model",
        "head_zoo:Net",
        "--data",
        vectors(tmp_path / "ten.npz", 10, 50),
        "--format",
        "json",
    )
    assert fits.exit_code == 0, fits.output
    assert "num_classes=10 taken from the checkpoint's head fc.weight (10, 24)" in " ".join(
        json.loads(fits.stdout)["notes"]
    )
