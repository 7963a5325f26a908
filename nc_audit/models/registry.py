"""The architecture registry: plain-data records of the models nc-audit can rebuild, and strict weight loading.

A record (``nc-audit-arch/1``: name, config with defaults filled in, num_classes, head) is stored in every
checkpoint nc-audit writes, so ``extract``, ``measure --data`` and ``finetune`` rebuild the model with no
user code. The registered architectures are the built-ins (:mod:`nc_audit.models.builtins`) and the
feature adapter of ``finetune --features`` (:mod:`nc_audit.models.adapter`). Two more record kinds
describe models nc-audit did not define: ``factory`` (a user callable and its arguments,
:mod:`nc_audit.models.factories`) and ``huggingface`` (a transformers class and its config,
:mod:`nc_audit.models.huggingface`); :func:`build_model` rebuilds all of them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError
from nc_audit.core.formats import ARCH_FORMAT
from nc_audit.models.adapter import FeatureAdapter
from nc_audit.models.builtins import MLP, ModMLP, SmallCNN
from nc_audit.models.transformer import OneLayerTransformer

#: Config keys added after records were first written: left out of a record while at their default.
OMITTED_AT_DEFAULT: dict[str, Any] = {"batch_norm": False}
_SHOW = 5  # how many offending keys an error message names before it counts the rest


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "cnn": SmallCNN,
    "modmlp": ModMLP,
    "transformer": OneLayerTransformer,
    "adapter": FeatureAdapter,
}


def _architecture(name: Any) -> Callable[..., nn.Module]:
    if not isinstance(name, str) or name not in ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}; built-in architectures: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def _plain(value: Any) -> Any:
    """The value as JSON-like plain data (tuples become lists), or ValueError."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v) for k, v in value.items()}
    raise ValueError(f"{value!r} is not plain data (str, int, float, bool, list, dict)")


def _full_config(name: object, config: object, num_classes: int) -> dict[str, Any]:
    """The config with defaults filled in, checked by building the model on the meta device (no memory)."""
    factory = _architecture(name)
    params = {k: p for k, p in inspect.signature(factory).parameters.items() if k != "num_classes"}
    if not isinstance(config, dict):
        raise InputError(f"architecture {name!r}: config must be a dict, got {type(config).__name__}")
    config = dict(config)
    if "num_classes" in config and config.pop("num_classes") != num_classes:
        raise InputError(
            f"architecture {name!r}: config num_classes disagrees with num_classes={num_classes}"
        )
    unknown = sorted(set(config) - set(params))
    missing = sorted(k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in config)
    if unknown or missing:
        problem = (
            f"unknown key(s) {', '.join(unknown)}" if unknown else f"missing key(s) {', '.join(missing)}"
        )
        raise InputError(f"architecture {name!r}: {problem}; accepted keys: {', '.join(params)}")
    full = {k: config.get(k, p.default) for k, p in params.items()}
    try:
        full = _plain(full)
        with torch.device("meta"):
            factory(num_classes=num_classes, **full)
    except (TypeError, ValueError) as error:
        raise InputError(f"architecture {name!r}: bad config: {error}") from None
    # options added later are left out at their default, so records read as before they existed
    return {k: v for k, v in full.items() if not (k in OMITTED_AT_DEFAULT and v == OMITTED_AT_DEFAULT[k])}


def architecture_record(name: object, config: object, num_classes: object) -> dict[str, Any]:
    """Plain-data record of a built-in architecture, to store in a checkpoint and rebuild with build_model.

    Format ``{"format": "nc-audit-arch/1", "name", "config" (defaults filled in), "num_classes", "head"}``.
    An unknown name, unknown or missing config keys and bad values raise InputError (so the arguments
    may come from a file as they are).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"num_classes must be a positive integer, got {num_classes!r}")
    full = _full_config(name, config, num_classes)
    return {"format": ARCH_FORMAT, "name": name, "config": full, "num_classes": num_classes, "head": "head"}


def build_model(record: dict[str, Any], source: str = "the checkpoint") -> nn.Module:
    """A freshly initialised model from a record: a built-in or the adapter (made by
    architecture_record), a ``factory`` record (the recorded callable, after the rule of
    :mod:`nc_audit.models.factory_rule`) or a ``huggingface`` record (config bounded first). Commands
    rebuild a checkpoint's record through :func:`nc_audit.models.loading.load_model`, which builds it
    on the meta device and checks it against the checkpoint's tensors before this real build."""
    if not isinstance(record, dict) or record.get("format") != ARCH_FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise InputError(f"architecture record must have format {ARCH_FORMAT!r}, got {found!r}")
    if record.get("name") == "factory":
        from nc_audit.models.factories import factory_from_record

        return factory_from_record(record, source)(record.get("num_classes"))
    if record.get("name") == "huggingface":
        from nc_audit.models.huggingface import build_from_record

        return build_from_record(record, source)
    checked = architecture_record(record.get("name"), record.get("config", {}), record.get("num_classes"))
    return ARCHITECTURES[checked["name"]](num_classes=checked["num_classes"], **checked["config"])


def _listed(label: str, items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW]) + (f", … (+{len(items) - _SHOW} more)" if len(items) > _SHOW else "")
    return f"{len(items)} {label} ({shown})"


def load_weights(model: nn.Module, state_dict: dict[str, Tensor], source: str) -> None:
    """Load a state dict strictly; missing, unexpected or misshapen keys raise InputError naming ``source``."""
    check_weights_fit(model, state_dict, source)
    model.load_state_dict(state_dict, strict=True)


def check_weights_fit(model: nn.Module, state_dict: dict[str, Tensor], source: str) -> None:
    """InputError naming ``source`` unless ``state_dict`` has exactly the model's keys and shapes (the
    model may live on the meta device)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: file {tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__} vs model {tuple(w.shape)}"
        for k, v in state_dict.items()
        if (w := expected.get(k)) is not None and (not isinstance(v, Tensor) or v.shape != w.shape)
    ]
    if missing or unexpected or mismatched:
        labels = ("missing key(s)", "unexpected key(s)", "shape mismatch(es)")
        parts = [
            _listed(label, items)
            for label, items in zip(labels, (missing, unexpected, mismatched), strict=True)
            if items
        ]
        raise InputError(f"{source}: weights do not fit the model: {'; '.join(parts)}")
