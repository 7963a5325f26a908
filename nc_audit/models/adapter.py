"""A residual MLP adapter and a linear head, trained on cached features (the cheap path for big backbones).

Like a CLIP adapter: the frozen backbone's features h (d) pass through h + U·relu(D·h) and then the head.
U starts at zero, so before the first step the adapter is the identity and the model reproduces the
dump's own head exactly (epoch 0 measures the dump as it is).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.load import Head


class ResidualAdapter(nn.Module):
    """h ↦ h + up(relu(down(h))), with ``up`` zero-initialised (identity at the start)."""

    def __init__(self, feature_dim: int, hidden: int) -> None:
        super().__init__()
        self.down = nn.Linear(feature_dim, hidden)
        self.up = nn.Linear(hidden, feature_dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:
        """Adapted features (N, d) from features (N, d)."""
        adapted: Tensor = h + self.up(torch.relu(self.down(h)))  # (N, d)
        return adapted


class FeatureAdapter(nn.Module):
    """``body`` (a ResidualAdapter) then ``head``; the features are the adapted ones (the head's input).

    The keyword signature matches the built-in architectures: it is registered as ``adapter`` in
    :data:`nc_audit.models.registry.ARCHITECTURES` and rebuilt from its record like them.
    """

    def __init__(self, *, num_classes: int, feature_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.body = ResidualAdapter(feature_dim, hidden)
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, C) from cached features (N, d)."""
        logits: Tensor = self.head(self.body(x.to(self.head.weight.dtype)))  # (N, C)
        return logits


def build_adapter(head: Head, hidden: int | None) -> FeatureAdapter:
    """A FeatureAdapter whose head starts as ``head`` (float32); ``hidden`` defaults to d. Its record is
    ``architecture_record("adapter", {"feature_dim": d, "hidden": hidden}, C)`` (the registry's)."""
    C, d = head.num_classes, head.feature_dim
    hidden = hidden or d
    if C < 2:
        raise InputError(f"head '{head.name}' has {C} row(s); a classifier needs at least 2 classes")
    model = FeatureAdapter(num_classes=C, feature_dim=d, hidden=hidden)
    with torch.no_grad():
        model.head.weight.copy_(head.weight)
        if head.bias is not None:
            model.head.bias.copy_(head.bias)
        else:
            model.head.bias.zero_()
    return model
