"""`finetune`'s options fill FinetuneConfig by name (one option per field, one field per option), and
each numeric setting has one range with one message, the same from the CLI and from the library."""

from __future__ import annotations

import inspect
import math
import typing
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from conftest import mlp_checkpoint
from runs import assert_bad_input
from typer.testing import CliRunner

from nc_audit.cli import app
from nc_audit.cli.finetune import finetune_command
from nc_audit.cli.finetune_options import NOT_SETTINGS, RENAMED, finetune_config
from nc_audit.core.errors import InputError
from nc_audit.train.config import FinetuneConfig
from nc_audit.train.losses import total_loss
from nc_audit.train.ranges import FINETUNE_RANGES

pytestmark = pytest.mark.usefixtures("isolated_cli")

#: A value outside the range of each setting (the flag takes it as typed).
BAD: dict[str, float] = {"cma_weight": 1.5, "mir_weight": -0.1, "hdr_weight": -1.0, "label_smoothing": 1.01,
                         "lr": 0.0, "epochs": 0, "batch_size": 0, "loss_shards": 0, "train_samples_per_class": 0,
                         "adapter_hidden": 0, "seed": -1}  # fmt: skip


def _parameters() -> list[str]:
    return list(inspect.signature(finetune_command).parameters)


def test_every_config_field_has_exactly_one_option_and_every_option_one_field() -> None:
    settings = [RENAMED.get(name, name) for name in _parameters() if name not in NOT_SETTINGS]
    assert sorted(settings) == sorted(field.name for field in fields(FinetuneConfig))
    assert len(settings) == len(set(settings))
    assert NOT_SETTINGS <= set(_parameters())


def test_every_option_value_reaches_its_field(tmp_path: Path) -> None:
    """Every setting given a value of its own (none the default) arrives in the config unchanged."""
    from nc_audit.cli.common import Device

    given = {"checkpoint": tmp_path / "c.pt", "cma_weight": 0.25, "data": "digits", "features": None,
             "anchors": tmp_path / "a.npy", "mir_weight": 0.5, "hdr_weight": 0.75, "label_smoothing": 0.1,
             "epochs": 7, "lr": 0.02, "batch_size": 9, "freeze_body": True, "seed": 11, "out": tmp_path / "o",
             "resume": True, "model": "m.py:build", "model_arg": ["width=3"], "head": "fc",
             "train_samples_per_class": 4, "adapter_hidden": None, "loss_shards": 2, "device": Device.cpu,
             "html_path": None, "quiet": True, "allow_external_data": False,
             "regularizer_target": "max", "regularizer_head": "trainable"}  # fmt: skip
    assert set(given) == set(_parameters())
    config = finetune_config(given)
    for name, value in given.items():
        if name in NOT_SETTINGS:
            continue
        field = RENAMED.get(name, name)
        expected = {"model_arg": ("width=3",), "device": "cpu"}.get(name, value)
        assert getattr(config, field) == expected, name
    assert config.model_spec.args == {"width": 3} and config.model_spec.head == "fc"


def test_every_numeric_setting_has_a_range() -> None:
    hints = typing.get_type_hints(FinetuneConfig)
    numeric = {name for name, hint in hints.items() if {int, float} & set(typing.get_args(hint) or (hint,))}
    numeric -= {name for name, hint in hints.items() if hint is bool}
    assert numeric == set(FINETUNE_RANGES)
    assert set(BAD) == set(FINETUNE_RANGES)


@pytest.mark.parametrize("setting", sorted(BAD))
def test_a_setting_out_of_range_is_refused_once_with_one_message_before_anything_is_written(
    setting: str, tmp_path: Path
) -> None:
    checkpoint = mlp_checkpoint(tmp_path / "start.pt")
    flag = FINETUNE_RANGES[setting].flag
    args = [str(checkpoint), "--data", "digits", "--out", str(tmp_path / "run"), "--no-progress"]
    args += ["--cma-weight", "0.1"] if setting != "cma_weight" else []
    result = CliRunner().invoke(app, ["finetune", *args, flag, str(BAD[setting])])
    line = assert_bad_input(result, f"{flag} must ")
    assert not (tmp_path / "run").exists()
    # the library says the same: FinetuneConfig checks on construction, with the same message
    settings = {"cma_weight": 0.1, "data": "digits", "checkpoint": checkpoint, setting: BAD[setting]}
    with pytest.raises(InputError) as raised:
        FinetuneConfig(out=tmp_path / "lib", **settings)  # type: ignore[arg-type]  # values of each type
    assert line == f"nc-audit: error: {raised.value}"


@pytest.mark.parametrize(
    ("keyword", "value"), [("cma_weight", 1.5), ("mir_weight", -1.0), ("hdr_weight", math.nan)]
)
def test_the_loss_refuses_a_weight_with_the_message_of_the_option(keyword: str, value: float) -> None:
    logits, labels = torch.zeros(4, 2), torch.tensor([0, 1, 0, 1])
    features, anchors = torch.ones(4, 3), torch.ones(2, 3)
    weights = {"cma_weight": 0.1, keyword: value}
    with pytest.raises(InputError) as raised:
        total_loss(logits, labels, features, anchors, **weights)  # type: ignore[arg-type]
    flag = FINETUNE_RANGES[keyword].flag
    assert str(raised.value).startswith(f"{flag} must lie in ")
