"""The rule for a checkpoint's recorded factory (issue 19, class 1): no attribute chain, no module from the
working folder, only model constructors of torch.nn / torchvision.models / timm, only plain arguments;
built on the meta device and checked against the checkpoint before any real allocation."""

from __future__ import annotations

import json
import re
import resource
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.models.factories import factory_from_record
from nc_audit.models.factory_rule import check_args, forbidden_key
from nc_audit.models.hf_config import check_config
from nc_audit.models.loading import load_model
from nc_audit.models.trusted_import import import_installed, safe_path

PLANT = "open('marker', 'w').write('ran')\n"


def record(spec: str, args: dict[str, Any] | None = None, num_classes: int = 3, head: str = "") -> dict:
    return {"format": "nc-audit-arch/1", "name": "factory", "config": {"callable": spec, "args": args or {}},
            "num_classes": num_classes, "head": head}  # fmt: skip


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working folder is tmp_path, and it is first on sys.path (as under ``python -m``)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("spec", "args", "why"),
    [
        ("transformers.utils.hub:os.system", {"command": "touch marker"}, "dotted attribute chain"),
        (
            "torch.nn:functional.torch.load",
            {"f": "evil.pkl", "weights_only": False},
            "dotted attribute chain",
        ),
        ("torch.nn:functional.importlib.import_module", {"name": "evilmod"}, "dotted attribute chain"),
        ("transformers.dynamic_module_utils:get_class_in_module", {}, "not one of the model constructors"),
        ("transformers.utils.hub:sys.exit", {}, "dotted attribute chain"),
        ("torch.nn:modules.module.torch.hub.load", {"repo_or_dir": "."}, "dotted attribute chain"),
        ("builtins:eval", {"source": "1"}, "not one of the model constructors"),
        ("torch.nn:functional", {}, "not a model constructor of torch.nn"),
        ("torch.nn:init", {}, "not a model constructor of torch.nn"),
        ("torch.nn:_reduction", {}, "a private name"),
        ("torch.nn.modules.linear:Linear", {}, "not one of the model constructors"),
        ("./zoo.py:build", {}, "not a MODULE:NAME"),
    ],
)
def test_a_recorded_callable_that_is_not_a_plain_constructor_is_refused(
    workdir: Path, spec: str, args: dict, why: str
) -> None:
    with pytest.raises(InputError) as raised:
        factory_from_record(record(spec, args), "m.pt")
    message = str(raised.value)
    assert (
        message.startswith(f"m.pt: the checkpoint's recorded factory {spec} is not built") and why in message
    )
    assert "pass --model MODULE:CALLABLE" in message and f"--model {spec}" not in message
    assert not (workdir / "marker").exists()


def test_a_torch_nn_class_with_plain_arguments_is_built() -> None:
    factory = factory_from_record(record("torch.nn:Linear", {"in_features": 4, "out_features": 3}), "m.pt")
    model = factory(None)
    assert isinstance(model, nn.Linear) and model.weight.shape == (3, 4)
    assert factory.label == "m.pt: the checkpoint's recorded factory torch.nn:Linear"


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        ({"pretrained": True}, "pretrained"),
        ({"weights": "IMAGENET1K_V1"}, "weights"),
        ({"trust_remote_code": True}, "trust_remote_code"),
        ({"cache_dir": "x"}, "cache_dir"),
        ({"checkpoint_path": "x.pt"}, "checkpoint_path"),
        ({"device": "cuda"}, "device"),
        ({"model_name": "hf-hub:org/evil"}, "not a plain name"),
        ({"model_name": "../../x"}, "not a plain name"),
        ({"cfg": {"file": "x"}}, "holds a dict"),
        ({"num_layers": 100000}, "over 1024"),
        ({"scale": float("nan")}, "not a bounded number"),
    ],
)
def test_recorded_arguments_that_fetch_trust_or_name_files_are_refused(args: dict, refused: str) -> None:
    checked = check_args({"in_features": 4, **args})
    assert checked.kept == {"in_features": 4} and any(refused in r for r in checked.refused), checked
    with pytest.raises(InputError, match="arguments not passed on a file's word"):
        factory_from_record(record("torch.nn:Linear", {"in_features": 4, "out_features": 3, **args}), "m.pt")


def test_arguments_that_ask_for_nothing_are_dropped_with_a_note() -> None:
    checked = check_args({"pretrained": False, "weights": None, "in_features": 4, "widths": [8, 8]})
    assert checked.kept == {"in_features": 4, "widths": [8, 8]} and checked.dropped == (
        "pretrained",
        "weights",
    )
    assert (
        forbidden_key("pretrained_cfg_overlay") and forbidden_key("model_file") and not forbidden_key("width")
    )


def test_a_shadowing_module_in_the_working_folder_never_runs(workdir: Path) -> None:
    """./timm.py and ./torchvision/ are never imported for a record (timm and torchvision are not installed
    here; when they are, the installed ones are used)."""
    (workdir / "timm.py").write_text(PLANT + "def create_model(**kw):\n    return None\n")
    (workdir / "torchvision").mkdir()
    (workdir / "torchvision" / "__init__.py").write_text(PLANT)
    for spec in ("timm:create_model", "torchvision.models:resnet18"):
        with pytest.raises(InputError, match="not built on the file's word"):
            factory_from_record(record(spec, {"model_name": "resnet10t"}), "m.pt")
    assert not (workdir / "marker").exists()
    assert str(workdir) not in safe_path()


def test_a_module_already_imported_from_the_working_folder_is_refused(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "timm.py").write_text("def create_model(**kw):\n    return None\n")
    monkeypatch.delitem(sys.modules, "timm", raising=False)
    __import__("timm")  # something imported the planted file before nc-audit looked
    try:
        with pytest.raises(InputError, match="not from the installed timm distribution"):
            import_installed("timm")
    finally:
        del sys.modules["timm"]
    assert import_installed("torch.nn") is nn


def test_a_recorded_linear_of_20000_squared_never_allocates(workdir: Path) -> None:
    """Built on the meta device and refused on shapes: peak RSS does not grow by the 1.5 GB it would take."""
    torch.save({"state_dict": {"weight": torch.zeros(3, 4), "bias": torch.zeros(3)},
                "architecture": record("torch.nn:Linear", {"in_features": 20000, "out_features": 20000})},
               workdir / "big.pt")  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InputError, match=r"big.pt: weights do not fit the model: .*\(20000, 20000\)"):
        load_model(workdir / "big.pt")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500 * 1024  # KiB


def test_a_fitting_recorded_linear_is_rebuilt_with_a_note(workdir: Path) -> None:
    torch.save({"state_dict": {"weight": torch.randn(3, 4), "bias": torch.zeros(3)},
                "architecture": record("torch.nn:Linear", {"in_features": 4, "out_features": 3, "pretrained": False})},
               workdir / "lin.pt")  # fmt: skip
    loaded = load_model(workdir / "lin.pt")
    assert isinstance(loaded.model, nn.Linear) and loaded.num_classes == 3
    assert any("recorded factory torch.nn:Linear" in note for note in loaded.notes)
    assert any("dropped the argument(s) pretrained" in note for note in loaded.notes)


def test_recorded_arguments_given_to_a_user_model_are_filtered_with_a_note(workdir: Path) -> None:
    args = {
        "in_features": 4,
        "out_features": 3,
        "pretrained": True,
        "weights": "X",
        "trust_remote_code": True,
    }
    torch.save({"state_dict": {"weight": torch.randn(3, 4), "bias": torch.zeros(3)},
                "architecture": record("torch.nn:Linear", args)}, workdir / "lin.pt")  # fmt: skip
    loaded = load_model(workdir / "lin.pt", "torch.nn:Linear")
    note = next(n for n in loaded.notes if "were not passed" in n)
    assert "pretrained, weights, trust_remote_code" in note
    own = load_model(workdir / "lin.pt", "torch.nn:Linear", model_args={"in_features": 4, "out_features": 3})
    assert not any("were not passed" in n for n in own.notes)  # the user's own --model-arg: theirs


def test_the_gate_bypass_is_an_error_with_no_report(workdir: Path) -> None:
    payload = torch.load(
        Path(__file__).parents[2] / "sample_checkpoints/digits-mlp/epoch_0300.pt", weights_only=True
    )
    payload["architecture"] = record("transformers.utils.hub:sys.exit", {}, num_classes=10, head="head")
    torch.save(payload, workdir / "exit.pt")
    result = CliRunner().invoke(app, ["measure", "exit.pt", "--data", "digits", "--fail-on", "nc1<=0",
                                      "--json", "r.json", "--no-progress"])  # fmt: skip
    assert result.exit_code == 2 and not (workdir / "r.json").exists()
    assert "exit.pt: the checkpoint's recorded factory transformers.utils.hub:sys.exit" in result.stderr


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"num_hidden_layers": 100000}, "num_hidden_layers is 100000"),
        ({"num_labels": 1e8}, "num_labels is 1e+08"),
        ({"text_config": {"num_layers": 5000}}, "num_layers is 5000"),
        ({"depths": [600, 600]}, "depths adds up to 1200"),
        ({"id2label": {str(i): "x" for i in range(100_001)}}, "id2label holds 100,001 classes"),
        ({"vocab_size": 2**40}, "vocab_size is"),
        ({"hidden_size": float("inf")}, "hidden_size is inf"),
    ],
)
def test_hf_config_numbers_are_bounded_before_building(values: dict, fragment: str) -> None:
    with pytest.raises(
        InputError, match=re.escape(f"cfg.json: the model config is out of bounds ({fragment}")
    ):
        check_config({"model_type": "bert", **values}, "cfg.json")
    bert = {"model_type": "bert", "num_hidden_layers": 12, "hidden_size": 768, "layer_norm_eps": 1e-12,
            "id2label": {"0": "a", "1": "b"}, "rope_theta": 500000.0}  # fmt: skip
    assert check_config(bert, "cfg.json") is bert


def test_a_huge_config_json_is_refused_on_its_size(workdir: Path) -> None:
    folder = workdir / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "padding": "x" * (5 * 2**20)}))
    (folder / "model.safetensors").write_bytes(b"\0" * 8)
    with pytest.raises(InputError, match=r"hf/config.json: config.json is 5.0 MiB \(at most 4 MiB"):
        load_model(folder)
