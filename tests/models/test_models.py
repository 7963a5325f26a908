"""Specification of the built-in architectures, their records, weight loading, user factories and the tap."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from nc_audit.core.errors import InputError
from nc_audit.models.factories import load_factory
from nc_audit.models.hooks import FeatureTap, find_head_module, forward_with_features
from nc_audit.models.registry import (
    ARCHITECTURES,
    architecture_record,
    build_model,
    load_weights,
)

RECORDS = {
    "mlp": ({"input_dim": 12, "hidden": [9, 7]}, 5, (6, 12)),
    "cnn": ({"in_channels": 1, "image_size": 8, "channels": [4, 6], "feature_dim": 10}, 10, (6, 1, 8, 8)),
    "modmlp": ({"p": 11, "embed_dim": 8, "hidden": 16}, 11, None),
    "adapter": ({"feature_dim": 12, "hidden": 5}, 4, (6, 12)),
    "transformer": ({"p": 11, "d_model": 8, "heads": 2, "d_mlp": 16}, 11, None),
}


def _inputs(name: str) -> torch.Tensor:
    torch.manual_seed(0)
    shape = RECORDS[name][2]
    return torch.randint(0, 11, (6, 2)) if shape is None else torch.randn(*shape)


def _model(name: str) -> nn.Module:
    config, num_classes, _ = RECORDS[name]
    torch.manual_seed(1)
    return build_model(architecture_record(name, config, num_classes))


def test_mlp_features_are_the_hidden_output_computed_by_hand() -> None:
    model = _model("mlp")
    x = _inputs("mlp")  # (6, 12)
    logits, features = forward_with_features(model, x)
    L1, L2 = (m for m in model.modules() if isinstance(m, nn.Linear) and m is not model.head)
    expected = torch.relu(torch.relu(x @ L1.weight.T + L1.bias) @ L2.weight.T + L2.bias)  # (6, 7)
    torch.testing.assert_close(features, expected)
    torch.testing.assert_close(logits, expected @ model.head.weight.T + model.head.bias)
    assert logits.shape == (6, 5)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_logits_are_the_head_applied_to_the_features(name: str) -> None:
    model = _model(name)
    _, num_classes, _ = RECORDS[name]
    logits, features = forward_with_features(model, _inputs(name))
    bias = 0 if model.head.bias is None else model.head.bias  # the transformer's unembedding has none
    torch.testing.assert_close(logits, features @ model.head.weight.T + bias)
    assert logits.shape == (6, num_classes) and features.shape == (6, model.head.in_features)
    assert features.requires_grad  # a training loss on the features must reach the body


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_head_is_registered_last(name: str) -> None:
    model = _model(name)
    head = ["head.weight"] + ([] if model.head.bias is None else ["head.bias"])
    assert list(model.state_dict())[-len(head) :] == head


def test_hooks_are_removed_after_use_and_after_an_error() -> None:
    model = _model("mlp")
    forward_with_features(model, _inputs("mlp"))
    assert len(model.head._forward_pre_hooks) == 0
    with pytest.raises(RuntimeError), FeatureTap(model):
        model(torch.randn(3, 5))  # wrong width
    assert len(model.head._forward_pre_hooks) == 0


def test_feature_tap_context_manager() -> None:
    model = _model("cnn")
    with FeatureTap(model) as tap:
        logits = model(torch.randn(4, 64))  # flat digits rows are reshaped to (4, 1, 8, 8)
    assert tap.head_name == "head" and tap.features.shape == (4, 10) and logits.shape == (4, 10)


def test_cnn_runs_on_28_by_28_images() -> None:
    model = build_model(architecture_record("cnn", {"in_channels": 3, "image_size": 28}, 10))
    logits, features = forward_with_features(model, torch.randn(2, 3, 28, 28))
    assert logits.shape == (2, 10) and features.shape == (2, 64)


def test_record_is_plain_data_with_defaults_and_round_trips_through_json() -> None:
    record = architecture_record("mlp", {"input_dim": 64}, 10)
    assert record == {
        "format": "nc-audit-arch/1",
        "name": "mlp",
        "config": {"input_dim": 64, "hidden": [128, 64], "activation": "relu"},
        "num_classes": 10,
        "head": "head",
    }
    for name in ARCHITECTURES:
        original = _model(name)
        rebuilt = build_model(json.loads(json.dumps(architecture_record(name, *RECORDS[name][:2]))))
        load_weights(rebuilt, original.state_dict(), "original")
        torch.testing.assert_close(rebuilt(_inputs(name)), original(_inputs(name)))


@pytest.mark.parametrize(
    ("name", "config", "num_classes", "message"),
    [
        ("resnet", {}, 10, "built-in architectures: mlp, cnn, modmlp"),
        ("mlp", {}, 10, "missing key(s) input_dim"),
        ("mlp", {"input_dim": 4, "width": 3}, 10, "unknown key(s) width"),
        ("mlp", {"input_dim": 0}, 10, "input_dim must be a positive integer"),
        ("mlp", {"input_dim": 4, "activation": "swish"}, 10, "activation must be one of"),
        ("mlp", {"input_dim": 4, "hidden": "64"}, 10, "hidden must be a list"),
        ("cnn", {"in_channels": 1, "image_size": 3}, 10, "too small"),
        ("modmlp", {"p": 7}, 5, "num_classes must equal p=7"),
        ("mlp", {"input_dim": 4}, 0, "num_classes must be a positive integer"),
    ],
)
def test_bad_records_raise_input_error(name: str, config: dict, num_classes: int, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        architecture_record(name, config, num_classes)


def test_build_model_rejects_foreign_records() -> None:
    with pytest.raises(InputError, match="nc-audit-arch/1"):
        build_model({"name": "mlp", "config": {"input_dim": 3}, "num_classes": 2})
    record = architecture_record("mlp", {"input_dim": 3}, 2) | {"name": "vit"}
    with pytest.raises(InputError, match="built-in architectures: mlp, cnn, modmlp"):
        build_model(record)


def test_load_weights_lists_missing_unexpected_and_misshapen_keys() -> None:
    model = build_model(architecture_record("mlp", {"input_dim": 4, "hidden": [3]}, 2))
    state = dict(model.state_dict())
    del state["body.1.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["head.weight"] = torch.zeros(5, 3)
    with pytest.raises(InputError) as caught:
        load_weights(model, state, "ckpt.pt")
    message = str(caught.value)
    assert message.startswith("ckpt.pt:")
    assert "1 missing key(s) (body.1.bias)" in message
    assert "1 unexpected key(s) (extra.weight)" in message
    assert "head.weight: file (5, 3) vs model (2, 3)" in message


def test_load_weights_shows_the_first_few_and_counts_the_rest() -> None:
    model = build_model(architecture_record("mlp", {"input_dim": 4, "hidden": [3]}, 2))
    state = {f"module.{k}": v for k, v in model.state_dict().items()} | {
        f"x{i}": torch.zeros(1) for i in range(4)
    }
    with pytest.raises(InputError, match=r"8 unexpected key\(s\) \(.*\(\+3 more\)\)"):
        load_weights(model, state, "ckpt.pt")


def test_load_weights_loads_a_matching_state_dict() -> None:
    model = build_model(architecture_record("mlp", {"input_dim": 4, "hidden": [3]}, 2))
    state = {k: torch.full_like(v, 0.5) for k, v in model.state_dict().items()}
    load_weights(model, state, "ckpt.pt")
    assert torch.equal(model.head.weight, torch.full((2, 3), 0.5))


class _Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
        self.fc = nn.Linear(6, 3)
        self.aux = nn.Sequential(nn.Linear(3, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class _Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 6)
        self.out = nn.Linear(6, 3)
        self.aux = nn.Linear(3, 2)


def test_find_head_module_by_name_by_attribute_by_usual_name_and_by_position() -> None:
    model = _Backbone()
    assert find_head_module(model, "fc") == ("fc", model.fc)
    assert find_head_module(model) == ("fc", model.fc)  # a usual head name beats a later Linear
    plain = _Plain()
    assert find_head_module(plain) == ("aux", plain.aux)  # no usual name: the last Linear
    assert find_head_module(plain, num_classes=3) == ("out", plain.out)  # C outputs first
    assert find_head_module(_model("mlp"))[0] == "head"
    with pytest.raises(
        InputError,
        match=re.escape(
            "no such module or parameter; candidates: features.0 (6, 4), fc (3, 6), aux.0 (2, 3)"
        ),
    ):
        find_head_module(model, "classifier")
    with pytest.raises(InputError, match=re.escape("no such module or parameter; did you mean 'fc'?")):
        find_head_module(model, "fcc")
    with pytest.raises(InputError, match=re.escape("not nn.Linear")):
        find_head_module(model, "features")
    with pytest.raises(InputError, match=re.escape("no nn.Linear")):
        find_head_module(nn.Sequential(nn.ReLU()))


def test_features_of_a_named_head_in_a_user_model() -> None:
    model = _Backbone()
    x = torch.randn(5, 4)
    _, features = forward_with_features(model, x, head_name="fc")
    torch.testing.assert_close(features, torch.relu(model.features[0](x)))
    with pytest.raises(InputError, match="ran 0 times"):
        forward_with_features(model, x, head_name="aux.0")


FACTORY_FILE = """
import torch.nn as nn
import helper_module_for_nc_audit_test as helper

def make():
    return nn.Linear(helper.WIDTH, 2)

def broken():
    raise RuntimeError("no GPU here")

def not_a_model():
    return 3

VALUE = 7
"""


def test_load_factory_from_a_file_and_from_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "helper_module_for_nc_audit_test.py").write_text("WIDTH = 4\n")
    (tmp_path / "user_models.py").write_text(FACTORY_FILE)
    model = load_factory(f"{tmp_path / 'user_models.py'}:make")()
    assert isinstance(model, nn.Linear) and model.in_features == 4
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "user_models", raising=False)
    assert isinstance(load_factory("user_models:make")(), nn.Linear)


def test_load_factory_errors(tmp_path: Path) -> None:
    (tmp_path / "helper_module_for_nc_audit_test.py").write_text("WIDTH = 4\n")
    (tmp_path / "user_models.py").write_text(FACTORY_FILE)
    (tmp_path / "bad.py").write_text("import not_a_real_module_xyz\n")
    path = tmp_path / "user_models.py"
    cases = {
        "no_colon_here": "expected package.module:factory",
        "user_models:": "expected package.module:factory",
        "user_models:1bad": "expected package.module:factory",
        "not_a_real_package_xyz.models:make": "importing not_a_real_package_xyz.models failed: ModuleNotFoundError",
        f"{tmp_path / 'missing.py'}:make": "does not exist",
        f"{tmp_path / 'bad.py'}:make": "ModuleNotFoundError",
        f"{path}:nothing": "has no attribute 'nothing'",
        f"{path}:VALUE": "VALUE is a int, not a callable",
    }
    for spec, message in cases.items():
        with pytest.raises(InputError, match=re.escape(message)):
            load_factory(spec)
    with pytest.raises(InputError, match="the factory raised RuntimeError: no GPU here"):
        load_factory(f"{path}:broken")()
    with pytest.raises(InputError, match=re.escape("returned a int, not an nn.Module")):
        load_factory(f"{path}:not_a_model")()
