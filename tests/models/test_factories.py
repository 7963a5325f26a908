"""User architectures with arguments: ``--model MODULE:CALLABLE --model-arg KEY=VALUE``, the number of
classes taken from the checkpoint when the callable takes it, and the callable recorded by finetune.

The callables are a small local module written the way torchvision's and timm's are: a class with
``num_classes=1000`` by default, and a ``create_model(model_name, **kwargs)`` that forwards keywords.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.models.factories import factory_from_record, load_factory, parse_model_args
from nc_audit.models.loading import load_model

ZOO = '''
import torch.nn as nn

class Net(nn.Module):
    """torchvision style: num_classes defaults to 1000."""
    def __init__(self, num_classes=1000, width=6, in_dim=8):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, width), nn.ReLU())
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.body(x))

MODELS = {"net6": 6, "net9": 9}

def create_model(model_name, pretrained=False, **kwargs):
    """timm style: the architecture by name, everything else through **kwargs."""
    return Net(width=MODELS[model_name], **kwargs)

class Texty(nn.Module):
    """Hugging Face style: num_labels."""
    def __init__(self, num_labels=2):
        super().__init__()
        self.score = nn.Linear(8, num_labels)

    def forward(self, x):
        return self.score(x)

def strict(width):
    return Net(width=width)
'''


@pytest.fixture
def zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The module ``nc_zoo`` importable from the working directory (tmp_path)."""
    (tmp_path / "nc_zoo.py").write_text(ZOO)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "nc_zoo", raising=False)
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return "nc_zoo"


def checkpoint(path: Path, width: int = 6, classes: int = 3, seed: int = 0) -> Path:
    """A bare state dict of nc_zoo.Net(num_classes=classes, width=width), as torch.save writes it."""
    torch.manual_seed(seed)
    state = {
        "body.0.weight": torch.randn(width, 8),
        "body.0.bias": torch.randn(width),
        "fc.weight": torch.randn(classes, width),
        "fc.bias": torch.randn(classes),
    }
    torch.save(state, path)
    return path


def vectors(path: Path, classes: int = 3, n: int = 60) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, inputs=rng.normal(size=(n, 8)).astype(np.float32), labels=np.arange(n) % classes)
    return path


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


def test_model_args_are_json_else_strings() -> None:
    args = parse_model_args(["num_classes=10", "model_name=resnet10t", "widths=[64, 64]", "pretrained=false",
                             "name=\"quoted\"", "scale=0.5", "empty="])  # fmt: skip
    assert args == {"num_classes": 10, "model_name": "resnet10t", "widths": [64, 64], "pretrained": False,
                    "name": "quoted", "scale": 0.5, "empty": ""}  # fmt: skip
    for bad, message in (("noequals", "expected KEY=VALUE"), ("1x=2", "expected KEY=VALUE")):
        with pytest.raises(InputError, match=message):
            parse_model_args([bad])
    with pytest.raises(InputError, match="given twice"):
        parse_model_args(["a=1", "a=2"])


def test_the_class_count_comes_from_the_checkpoint_head(zoo: str, tmp_path: Path) -> None:
    """Net's default of 1000 classes would not fit fc.weight (3, 6): num_classes=3 is filled in."""
    loaded = load_model(checkpoint(tmp_path / "net.pt"), f"{zoo}:Net")
    assert loaded.num_classes == 3 and loaded.head_name == "fc"
    assert "num_classes=3 taken from the checkpoint's head" in " ".join(loaded.notes)
    assert loaded.architecture == {"format": "nc-audit-arch/1", "name": "factory",
                                   "config": {"callable": f"{zoo}:Net", "args": {}}, "num_classes": 3,
                                   "head": "fc"}  # fmt: skip


def test_a_kwargs_factory_gets_its_name_and_class_count(zoo: str, tmp_path: Path) -> None:
    """timm's create_model takes num_classes only through **kwargs; model_name comes from --model-arg."""
    path = checkpoint(tmp_path / "net9.pt", width=9, classes=5)
    loaded = load_model(path, f"{zoo}:create_model", model_args={"model_name": "net9"})
    assert loaded.num_classes == 5 and loaded.model.fc.in_features == 9
    assert load_model(path, f"{zoo}:Texty".replace("Texty", "Net"), model_args={"width": 9}).num_classes == 5
    explicit = load_factory(f"{zoo}:Net", {"num_classes": 4})
    assert explicit(num_classes=7).fc.out_features == 4  # an argument given wins over the checkpoint


def test_num_labels_is_filled_too(zoo: str, tmp_path: Path) -> None:
    torch.save({"score.weight": torch.randn(4, 8), "score.bias": torch.randn(4)}, tmp_path / "t.pt")
    assert load_model(tmp_path / "t.pt", f"{zoo}:Texty").num_classes == 4


def test_factory_errors_name_the_callable_and_its_arguments(zoo: str, tmp_path: Path) -> None:
    path = checkpoint(tmp_path / "net.pt")
    with pytest.raises(
        InputError, match=r"nc_zoo:strict: the factory raised TypeError: .*nope.* with nope=1"
    ):
        load_model(path, f"{zoo}:strict", model_args={"nope": 1})
    with pytest.raises(InputError, match="--model-arg needs --model"):
        load_model(path, None, model_args={"width": 6})


def test_measure_a_factory_with_model_args_from_the_cli(zoo: str, tmp_path: Path) -> None:
    path = checkpoint(tmp_path / "net9.pt", width=9, classes=3)
    data = vectors(tmp_path / "vec.npz")
    result = invoke("measure", path, "--data", data, "--model", f"{zoo}:create_model",
                    "--model-arg", "model_name=net9", "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["checkpoint"]["head"] == "fc" and report["features"]["num_classes"] == 3
    assert any("num_classes=3 taken from the checkpoint's head" in note for note in report["notes"])
    other = invoke("measure", path, "--data", data, "--model", f"{zoo}:create_model",
                   "--model-arg", "model_name=net6", "--format", "json")  # fmt: skip
    assert other.exit_code == 2 and "shape mismatch" in other.stderr  # the arguments reach the factory


def test_finetune_records_the_callable_so_measure_needs_no_model(zoo: str, tmp_path: Path) -> None:
    path = checkpoint(tmp_path / "net9.pt", width=9, classes=3)
    data = vectors(tmp_path / "vec.npz")
    result = invoke("finetune", path, "--data", data, "--cma-weight", "0.1", "--epochs", "1", "--out",
                    tmp_path / "ft", "--model", f"{zoo}:create_model", "--model-arg", "model_name=net9")  # fmt: skip
    assert result.exit_code == 0, result.output
    record = torch.load(tmp_path / "ft" / "final.pt", weights_only=True)["architecture"]
    assert record["name"] == "factory"
    assert record["config"] == {"callable": f"{zoo}:create_model", "args": {"model_name": "net9"}}
    refused = invoke("measure", tmp_path / "ft" / "final.pt", "--data", data, "--format", "json")
    assert refused.exit_code == 2 and refused.stdout == ""  # a user module: not run on the file's word
    assert f"the checkpoint's recorded factory {zoo}:create_model is not built" in refused.stderr
    assert "pass --model MODULE:CALLABLE" in refused.stderr
    measured = invoke("measure", tmp_path / "ft" / "final.pt", "--data", data, "--format", "json",
                      "--model", f"{zoo}:create_model")  # fmt: skip
    assert measured.exit_code == 0, measured.output  # the recorded --model-arg model_name=net9 is reused
    assert json.loads(measured.stdout)["features"]["feature_dim"] == 9


@pytest.mark.parametrize(
    "spec",
    [
        "os:system",
        "subprocess:run",
        "builtins:exec",
        "torch:load",
        "torch.hub:load",
        "numpy:load",
        "transformers:AutoModel.from_pretrained",
        "pip._internal.cli.main:main",
        "./evil.py:build",
        "/tmp/evil.py:build",
        "nc_zoo:create_model",
    ],
)
def test_a_recorded_callable_outside_the_model_libraries_is_refused(spec: str) -> None:
    """Nothing is imported or called: the record names code, and a checkpoint may come from a pull request."""
    record = {"format": "nc-audit-arch/1", "name": "factory", "config": {"callable": spec, "args": {}}}
    modules_before = set(sys.modules)
    with pytest.raises(
        InputError, match=f"final.pt: the checkpoint's recorded factory {re.escape(spec)} is not"
    ):
        factory_from_record(record, "final.pt")
    assert set(sys.modules) == modules_before


@pytest.mark.parametrize(
    "args", [{"pretrained": True}, {"weights": "IMAGENET1K_V1"}, {"trust_remote_code": True}]
)
def test_a_recorded_library_factory_that_would_download_is_refused(args: dict) -> None:
    record = {"format": "nc-audit-arch/1", "name": "factory",
              "config": {"callable": "torch.nn:Linear", "args": {"in_features": 3, "out_features": 2, **args}}}  # fmt: skip
    with pytest.raises(InputError, match=f"arguments not passed on a file's word: {next(iter(args))}"):
        factory_from_record(record, "final.pt")


def test_a_recorded_factory_from_a_model_library_is_rebuilt() -> None:
    record = {"format": "nc-audit-arch/1", "name": "factory",
              "config": {"callable": "torch.nn:Linear", "args": {"in_features": 3, "out_features": 2}}}  # fmt: skip
    assert isinstance(factory_from_record(record, "final.pt")(None), nn.Linear)
