"""Magnitude pruning masks: which weights of a model are pruned, and the masks that keep the largest |w|.

Pruned parameters: the ``weight`` of every nn.Linear and nn.Conv1d/2d/3d module. Biases, normalisation
layers, embeddings and attention matrices held as bare parameters are never pruned. The classifier head
(an nn.Linear) is left dense unless ``include_head``: its rows are the W of K_W, so pruning it changes
the measured geometry directly rather than through the features.

Scope ``global``: one ranking of |w| over all pruned tensors together, so layers lose different shares.
Scope ``layer``: every tensor loses the same share. Either way exactly k = round(s·n) weights are pruned
(n = the weights ranked together), the k smallest |w|, ties broken by position (a stable sort), so the
kept share is exact and does not depend on ties: the masks are reproducible bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
SCOPES = ("global", "layer")


@dataclass(frozen=True)
class PrunedTensor:
    """One pruned weight tensor: its module's dotted name, how many entries it has and keeps."""

    name: str
    total: int
    kept: int


def prunable_weights(model: nn.Module, head_name: str, include_head: bool = False) -> dict[str, Tensor]:
    """``{module name: weight}`` of every nn.Linear/Conv module, in module order; the head only when
    ``include_head``. InputError when nothing is left to prune."""
    weights = {
        name: module.weight
        for name, module in model.named_modules()
        if isinstance(module, PRUNABLE_TYPES) and (include_head or name != head_name)
    }
    if not weights:
        kinds = ", ".join(t.__name__ for t in PRUNABLE_TYPES)
        extra = "" if include_head else " besides the head (pass --include-head to prune it)"
        raise InputError(f"the model has no {kinds} weight to prune{extra}")
    return weights


def _prune_count(sparsity: float, total: int) -> int:
    return round(sparsity * total)


def smallest_mask(magnitudes: Tensor, pruned: int) -> Tensor:
    """A bool mask (same shape) that is False at the ``pruned`` smallest entries (stable order), else True."""
    flat = magnitudes.reshape(-1)
    mask = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
    if pruned > 0:
        order = torch.sort(flat, stable=True).indices  # ascending |w|, ties by position
        mask[order[:pruned]] = False
    return mask.reshape(magnitudes.shape)


def magnitude_masks(weights: dict[str, Tensor], sparsity: float, scope: str = "global") -> dict[str, Tensor]:
    """Masks (True = kept) pruning the fraction ``sparsity`` of the smallest |w| (module docstring)."""
    if not (math.isfinite(sparsity) and 0.0 <= sparsity <= 1.0):
        raise InputError(f"sparsity must lie in [0, 1], got {sparsity}")
    if scope not in SCOPES:
        raise InputError(f"pruning scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    magnitudes = {name: w.detach().abs().to(torch.float64) for name, w in weights.items()}
    if scope == "layer":
        return {name: smallest_mask(m, _prune_count(sparsity, m.numel())) for name, m in magnitudes.items()}
    flat = torch.cat([m.reshape(-1) for m in magnitudes.values()])  # (n,)
    mask = smallest_mask(flat, _prune_count(sparsity, flat.numel()))
    masks, start = {}, 0
    for name, m in magnitudes.items():
        masks[name] = mask[start : start + m.numel()].reshape(m.shape)
        start += m.numel()
    return masks


@torch.no_grad()
def apply_masks(weights: dict[str, Tensor], masks: dict[str, Tensor]) -> list[PrunedTensor]:
    """Zero the pruned entries in place; what each tensor holds and keeps."""
    summary = []
    for name, weight in weights.items():
        mask = masks[name].to(weight.device)
        weight.mul_(mask.to(weight.dtype))
        summary.append(PrunedTensor(name, weight.numel(), int(mask.sum())))
    return summary
