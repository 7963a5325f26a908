"""Built-in architectures, their plain-data records, user factories, weight loading and the feature tap.

Every built-in model ends in an ``nn.Linear`` named ``head``, registered last, so its state dict ends with
``head.weight`` / ``head.bias``. Features are the head's input, read by a forward pre-hook on the head.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError

ARCH_FORMAT = "nc-audit-arch/1"
_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
_SHOW = 5  # how many offending keys an error message names before it counts the rest


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _int_list(name: str, value: Any) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of positive integers, got {value!r}")
    return [_positive_int(f"{name}[{i}]", v) for i, v in enumerate(value)]


def _activation(value: Any) -> nn.Module:
    if value not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {value!r}")
    return _ACTIVATIONS[value]()


class MLP(nn.Module):
    """Flatten, then Linear+activation per hidden width, then ``head``. Features: the last hidden output."""

    def __init__(
        self,
        *,
        num_classes: int,
        input_dim: int,
        hidden: list[int] | tuple[int, ...] = (128, 64),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        widths = [_positive_int("input_dim", input_dim), *_int_list("hidden", hidden)]
        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            layers += [nn.Linear(width_in, width_out), _activation(activation)]
        self.body = nn.Sequential(nn.Flatten(), *layers)
        self.head = nn.Linear(widths[-1], _positive_int("num_classes", num_classes))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, C) from inputs (N, ...) whose trailing dimensions hold ``input_dim`` numbers."""
        return self.head(self.body(x.to(self.head.weight.dtype)))  # (N, C)


class SmallCNN(nn.Module):
    """Conv3x3+ReLU+MaxPool2 per channel count, a Linear to ``feature_dim``+ReLU, then ``head``."""

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        image_size: int,
        channels: list[int] | tuple[int, ...] = (16, 32),
        feature_dim: int = 64,
    ) -> None:
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.image_size = _positive_int("image_size", image_size)
        widths = [in_channels, *_int_list("channels", channels)]
        side = image_size // 2 ** len(channels)  # each stage halves the side (floor)
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for {len(channels)} pooling stages")
        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            layers += [nn.Conv2d(width_in, width_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        projection = nn.Linear(widths[-1] * side * side, _positive_int("feature_dim", feature_dim))
        self.body = nn.Sequential(*layers, nn.Flatten(), projection, nn.ReLU())
        self.head = nn.Linear(feature_dim, _positive_int("num_classes", num_classes))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, C) from images (N, in_channels, S, S) or flat rows (N, in_channels·S·S)."""
        x = x.to(self.head.weight.dtype).reshape(-1, self.in_channels, self.image_size, self.image_size)
        return self.head(self.body(x))  # (N, C)


class ModMLP(nn.Module):
    """For a+b mod p: one embedding table shared by a and b, concatenated, Linear+ReLU, then ``head``."""

    def __init__(self, *, num_classes: int, p: int, embed_dim: int = 128, hidden: int = 256) -> None:
        super().__init__()
        if _positive_int("num_classes", num_classes) != _positive_int("p", p):
            raise ValueError(f"modmlp predicts a+b mod p, so num_classes must equal p={p}, got {num_classes}")
        self.embed = nn.Embedding(p, _positive_int("embed_dim", embed_dim))
        self.body = nn.Sequential(nn.Linear(2 * embed_dim, _positive_int("hidden", hidden)), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, pairs: Tensor) -> Tensor:
        """Logits (N, p) from integer pairs (N, 2) of operands a, b in [0, p)."""
        E = self.embed(pairs.long())  # (N, 2, embed_dim)
        return self.head(self.body(E.flatten(1)))  # (N, p)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"mlp": MLP, "cnn": SmallCNN, "modmlp": ModMLP}


def _architecture(name: Any) -> Callable[..., nn.Module]:
    if name == "adapter":  # the feature adapter of `finetune --features` lives with the training code
        from nc_audit.models.adapter import FeatureAdapter

        return FeatureAdapter
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


def _full_config(name: str, config: dict[str, Any], num_classes: int) -> dict[str, Any]:
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
    return full


def architecture_record(name: str, config: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """Plain-data record of a built-in architecture, to store in a checkpoint and rebuild with build_model.

    Format ``{"format": "nc-audit-arch/1", "name", "config" (defaults filled in), "num_classes", "head"}``.
    An unknown name, unknown or missing config keys and bad values raise InputError.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"num_classes must be a positive integer, got {num_classes!r}")
    full = _full_config(name, config, num_classes)
    return {"format": ARCH_FORMAT, "name": name, "config": full, "num_classes": num_classes, "head": "head"}


def build_model(record: dict[str, Any]) -> nn.Module:
    """A freshly initialised built-in model from a record made by architecture_record."""
    if not isinstance(record, dict) or record.get("format") != ARCH_FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise InputError(f"architecture record must have format {ARCH_FORMAT!r}, got {found!r}")
    checked = architecture_record(record.get("name"), record.get("config", {}), record.get("num_classes"))
    return ARCHITECTURES[checked["name"]](num_classes=checked["num_classes"], **checked["config"])


def _listed(label: str, items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW]) + (f", … (+{len(items) - _SHOW} more)" if len(items) > _SHOW else "")
    return f"{len(items)} {label} ({shown})"


def load_weights(model: nn.Module, state_dict: dict[str, Tensor], source: str) -> None:
    """Load a state dict strictly; missing, unexpected or misshapen keys raise InputError naming ``source``."""
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
    model.load_state_dict(state_dict, strict=True)


def default_architecture(dataset_info: Any) -> dict[str, Any]:
    """Record of a sensible built-in for a dataset (anything with ``name``, ``input_shape``, ``num_classes``).

    modadd → modmlp; images (channels, S, S) → cnn; everything else (digits, gaussian, user arrays) → mlp.
    """
    shape = tuple(dataset_info.input_shape)
    num_classes = int(dataset_info.num_classes)
    if dataset_info.name == "modadd":
        return architecture_record("modmlp", {"p": num_classes}, num_classes)
    if len(shape) == 3 and shape[1] == shape[2] and shape[0] <= 4:
        return architecture_record("cnn", {"in_channels": shape[0], "image_size": shape[1]}, num_classes)
    return architecture_record("mlp", {"input_dim": int(torch.Size(shape).numel())}, num_classes)


# Re-exported: the user-factory loader and the feature hooks live in their own modules.
from nc_audit.models.factories import load_factory  # noqa: E402
from nc_audit.models.hooks import FeatureTap, find_head_module, forward_with_features  # noqa: E402

__all__ = [
    "ARCHITECTURES",
    "ARCH_FORMAT",
    "FeatureTap",
    "architecture_record",
    "build_model",
    "default_architecture",
    "find_head_module",
    "forward_with_features",
    "load_factory",
    "load_weights",
]
