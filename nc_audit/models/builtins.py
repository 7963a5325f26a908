"""The built-in architectures: small models for the bundled data (digits, Gaussian mixtures, a + b mod p).
The one-layer transformer for a + b mod p lives in :mod:`nc_audit.models.transformer`.

Every built-in model ends in an ``nn.Linear`` named ``head``, registered last, so its state dict ends with
``head.weight`` / ``head.bias``. Features are the head's input, read by a forward pre-hook on the head
(:mod:`nc_audit.models.hooks`). ``batch_norm=True`` (MLP, CNN; default False, so older records rebuild
the same model) puts a BatchNorm after every hidden Linear / Conv, before its activation.
"""

from __future__ import annotations

import itertools
from typing import Any

from torch import Tensor, nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _int_list(name: str, value: Any) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of positive integers, got {value!r}")
    return [_positive_int(f"{name}[{i}]", v) for i, v in enumerate(value)]


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


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
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        widths = [_positive_int("input_dim", input_dim), *_int_list("hidden", hidden)]
        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            norm = [nn.BatchNorm1d(width_out)] if _flag("batch_norm", batch_norm) else []
            layers += [nn.Linear(width_in, width_out), *norm, _activation(activation)]
        self.body = nn.Sequential(nn.Flatten(), *layers)
        self.head = nn.Linear(widths[-1], _positive_int("num_classes", num_classes))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, C) from inputs (N, ...) whose trailing dimensions hold ``input_dim`` numbers."""
        logits: Tensor = self.head(self.body(x.to(self.head.weight.dtype)))  # (N, C)
        return logits


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
        batch_norm: bool = False,
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
            norm = [nn.BatchNorm2d(width_out)] if _flag("batch_norm", batch_norm) else []
            layers += [nn.Conv2d(width_in, width_out, 3, padding=1), *norm, nn.ReLU(), nn.MaxPool2d(2)]
        projection = nn.Linear(widths[-1] * side * side, _positive_int("feature_dim", feature_dim))
        self.body = nn.Sequential(*layers, nn.Flatten(), projection, nn.ReLU())
        self.head = nn.Linear(feature_dim, _positive_int("num_classes", num_classes))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, C) from images (N, in_channels, S, S) or flat rows (N, in_channels·S·S)."""
        x = x.to(self.head.weight.dtype).reshape(-1, self.in_channels, self.image_size, self.image_size)
        logits: Tensor = self.head(self.body(x))  # (N, C)
        return logits


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
        logits: Tensor = self.head(self.body(E.flatten(1)))  # (N, p)
        return logits
