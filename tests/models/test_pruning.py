"""Magnitude pruning masks (nc_audit.models.pruning): which tensors, how many weights, which ones."""

from __future__ import annotations

import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.models.pruning import apply_masks, magnitude_masks, prunable_weights
from nc_audit.models.registry import architecture_record, build_model

SPARSITIES = [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95]


def model_of(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    configs = {
        "mlp": ("mlp", {"input_dim": 64, "hidden": [24, 16], "batch_norm": True}),
        "cnn": ("cnn", {"in_channels": 1, "image_size": 8, "channels": [4, 6], "feature_dim": 16}),
    }
    arch, config = configs[name]
    return build_model(architecture_record(arch, config, 10))


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_global_scope_keeps_exactly_the_requested_share_and_the_largest_magnitudes(
    name: str, sparsity: float
) -> None:
    model = model_of(name)
    weights = prunable_weights(model, "head")
    before = {key: w.detach().clone() for key, w in weights.items()}
    summary = apply_masks(weights, magnitude_masks(weights, sparsity, "global"))
    total = sum(w.numel() for w in before.values())
    kept = sum(int((w != 0).sum()) for w in weights.values())
    assert sum(t.kept for t in summary) == kept == total - round(sparsity * total)
    assert abs(kept / total - (1 - sparsity)) <= 0.5 / total
    pruned_max = max(
        (before[k][w == 0].abs().max() for k, w in weights.items() if (w == 0).any()), default=-1.0
    )
    kept_min = min(before[k][w != 0].abs().min() for k, w in weights.items() if (w != 0).any())
    assert pruned_max <= kept_min  # one ranking over every pruned layer
    for key, w in weights.items():  # kept weights keep their values
        assert torch.equal(w[w != 0], before[key][w != 0])


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_layer_scope_keeps_exactly_the_requested_share_of_every_tensor(name: str, sparsity: float) -> None:
    model = model_of(name)
    weights = prunable_weights(model, "head")
    before = {key: w.detach().clone() for key, w in weights.items()}
    summary = apply_masks(weights, magnitude_masks(weights, sparsity, "layer"))
    for tensor in summary:
        w = weights[tensor.name]
        assert tensor.kept == int((w != 0).sum()) == w.numel() - round(sparsity * w.numel()), tensor
        if 0 < tensor.kept < w.numel():
            assert before[tensor.name][w == 0].abs().max() <= before[tensor.name][w != 0].abs().min()


def test_the_head_stays_dense_unless_included() -> None:
    model = model_of("mlp")
    assert list(prunable_weights(model, "head")) == ["body.1", "body.4"]  # Linear layers; BatchNorm never
    assert list(prunable_weights(model, "head", include_head=True)) == ["body.1", "body.4", "head"]
    names = list(prunable_weights(model_of("cnn"), "head"))
    assert names == ["body.0", "body.3", "body.7"]  # two convolutions and the projection


def test_ties_are_broken_by_position_so_the_count_is_exact() -> None:
    weights = {"a": torch.nn.Parameter(torch.ones(10)), "b": torch.nn.Parameter(torch.ones(7))}
    masks = magnitude_masks(weights, 0.5, "global")
    assert sum(int(m.sum()) for m in masks.values()) == 17 - round(8.5)
    assert masks["a"].tolist() == [False] * 8 + [True] * 2  # the first 8 of equal magnitude go


def test_bad_requests_are_refused() -> None:
    weights = prunable_weights(model_of("mlp"), "head")
    with pytest.raises(InputError, match="sparsity"):
        magnitude_masks(weights, 1.5)
    with pytest.raises(InputError, match="scope"):
        magnitude_masks(weights, 0.5, "rows")
    with pytest.raises(InputError, match="include-head"):
        prunable_weights(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)), "1")
