"""ModelSpec: which model to build and where, checked once on construction and read by every layer."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.measurement.options import MeasureOptions
from nc_audit.models.spec import NO_MODEL, ModelSpec


def test_arguments_are_kept_as_typed_and_read_as_a_typed_mapping() -> None:
    spec = ModelSpec("zoo.py:build", ["width=64", "name=resnet10t", "dims=[2, 3]"], "fc", "cpu")
    assert spec.arg_texts == ("width=64", "name=resnet10t", "dims=[2, 3]")  # the cache key's texts
    assert dict(spec.args) == {"width": 64, "name": "resnet10t", "dims": [2, 3]}
    with pytest.raises(TypeError):
        spec.args["width"] = 1  # type: ignore[index]  # read-only on purpose
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.head = "other"  # type: ignore[misc]  # frozen on purpose
    assert hash(spec) == hash(
        ModelSpec("zoo.py:build", ("width=64", "name=resnet10t", "dims=[2, 3]"), "fc", "cpu")
    )


@pytest.mark.parametrize(
    ("factory", "args", "message"),
    [
        (None, ("width=3",), "--model-arg needs --model MODULE:CALLABLE"),
        ("zoo.py:build", ("width",), "expected KEY=VALUE"),
        ("zoo.py:build", ("1x=2",), "expected KEY=VALUE"),
        ("zoo.py:build", ("width=2", "width=3"), "--model-arg width is given twice"),
    ],
)
def test_bad_arguments_are_refused_on_construction(
    factory: str | None, args: tuple[str, ...], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        ModelSpec(factory, args)


def test_the_defaults_are_a_self_describing_checkpoint_on_the_auto_device() -> None:
    assert NO_MODEL == ModelSpec() == ModelSpec.from_options(None, None, None, "auto")
    assert NO_MODEL.torch_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert ModelSpec(device="cpu").torch_device() == torch.device("cpu")


def test_measure_options_give_their_model_spec_on_a_resolved_device() -> None:
    options = MeasureOptions(model="zoo.py:build", model_args=("width=3",), head="fc", device="auto")
    assert options.model_spec() == ModelSpec("zoo.py:build", ("width=3",), "fc", "auto")
    assert options.model_spec("cuda:1").device == "cuda:1"
