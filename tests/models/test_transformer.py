"""The built-in one-layer transformer for a + b mod p (nc_audit.models.transformer)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.data.datasets import load_dataset
from nc_audit.measurement.api import measure
from nc_audit.models.hooks import forward_with_features
from nc_audit.models.registry import architecture_record, build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def full_causal_layer(model: torch.nn.Module, pairs: torch.Tensor) -> torch.Tensor:
    """The textbook layer on all three positions with a causal mask; the residual stream at position 2."""
    tokens = torch.cat([pairs, torch.full((len(pairs), 1), model.p)], dim=1)  # (N, 3)
    r = model.W_E[tokens] + model.W_pos  # (N, 3, d)
    out = r.clone()
    causal = torch.tril(torch.ones(3, 3, dtype=torch.bool))
    for h in range(model.heads):
        q, k, v = r @ model.W_Q[h], r @ model.W_K[h], r @ model.W_V[h]  # (N, 3, dh)
        scores = (q @ k.transpose(1, 2)) / math.sqrt(model.d_head)  # (N, 3, 3)
        scores = scores.masked_fill(~causal, float("-inf"))
        out = out + torch.softmax(scores, -1) @ v @ model.W_O[h]
    out = out + torch.relu(out @ model.W_in + model.b_in) @ model.W_out + model.b_out
    return out[:, 2]  # (N, d)


def test_the_last_position_equals_the_full_causal_layer_and_feeds_the_head() -> None:
    torch.manual_seed(0)
    model = build_model(
        architecture_record("transformer", {"p": 13, "d_model": 16, "heads": 2, "d_mlp": 32}, 13)
    )
    pairs = load_dataset("modadd:p=13", "train").inputs  # (N, 2)
    logits, features = forward_with_features(model, pairs)
    reference = full_causal_layer(model, pairs)
    torch.testing.assert_close(features, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, reference @ model.head.weight.T, rtol=1e-5, atol=1e-5)
    assert isinstance(model.head, torch.nn.Linear) and model.head.bias is None
    assert model.head.weight.shape == (13, 16)


def test_record_defaults_and_parameter_count() -> None:
    record = architecture_record("transformer", {"p": 59}, 59)
    assert record["config"] == {"p": 59, "d_model": 64, "heads": 4, "d_mlp": 256} and record["head"] == "head"
    model = build_model(record)
    # W_E 60·64, W_pos 3·64, Q K V O 4·64·64, W_in 64·256 + 256, W_out 256·64 + 64, unembedding 64·59
    assert sum(p.numel() for p in model.parameters()) == 57280
    torch.manual_seed(1)
    first = build_model(record).state_dict()
    torch.manual_seed(1)
    assert all(torch.equal(first[k], v) for k, v in build_model(record).state_dict().items())  # seeded


@pytest.mark.parametrize(
    ("config", "classes", "fragment"),
    [
        ({"p": 11}, 12, "num_classes must equal p"),
        ({"p": 11, "d_model": 10, "heads": 4}, 11, "multiple of heads"),
    ],
)
def test_bad_configs_are_refused(config: dict, classes: int, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        architecture_record("transformer", config, classes)


def test_a_saved_transformer_is_measured_from_its_record(tmp_path: Path) -> None:
    torch.manual_seed(0)
    record = architecture_record("transformer", {"p": 11, "d_model": 16, "heads": 2, "d_mlp": 16}, 11)
    checkpoint = save_checkpoint(tmp_path / "t.pt", build_model(record).state_dict(), record, {"step": 0})
    report = measure(checkpoint, data="modadd:p=11", cache_dir=tmp_path / "cache", device="cpu")
    assert report.checkpoint["head"] == "head" and report.features["feature_dim"] == 16
    assert report.num_classes == 11 and report.metrics["mir"] is not None
