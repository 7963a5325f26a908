"""Heads that read every token: features (N, T, d) pooled to (N, d) as the model's own forward pools them.

A decoder sequence classifier (Hugging Face ``GPT2ForSequenceClassification``, ``LlamaForSequenceClassification``,
Mistral, Qwen, ...) applies its ``score`` head to every token and keeps the scores of the last non-pad
token. nc-audit does not re-implement that rule: the token kept in each row is the one whose head output
*is* the model's logits (bit for bit: the model indexes the very tensor the hook sees), so the features
are exactly what the returned logits were computed from, whatever padding side or transformers version.
Ties (identical scores at two tokens) go to the last non-pad token by the ``attention_mask`` (else the
config's ``pad_token_id``, as transformers finds it).

Any other model whose head reads (N, T, d) is refused before its first full pass (``probe`` runs two rows)
unless the user names a rule with ``--pool``: ``last`` (last non-pad token), ``first`` (first non-pad
token) or ``mean`` (mean over non-pad tokens); the logits are then the head applied to the pooled features.
The rule travels with the head's name as ``NAME@RULE`` (``@last`` when the head is detected), so the
feature cache keys it like the head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError
from nc_audit.core.inputs import Inputs
from nc_audit.io.checkpoints.heads import POOL_SEPARATOR

#: The rules ``--pool`` accepts.
POOLS = ("last", "first", "mean")
#: How the head's name and the pooling rule are joined (``score@last``).
SEPARATOR = POOL_SEPARATOR
#: Hugging Face classes whose forward pools the head's per-token scores (the "model's own" rule).
OWN_POOLING_SUFFIXES = ("ForSequenceClassification",)


@dataclass(frozen=True)
class HeadChoice:
    """A ``--head`` value split: the module (or parameter) name, None when detected, and the ``--pool`` rule."""

    name: str | None
    pool: str | None


def split_head(spec: str | None) -> HeadChoice:
    """``score@last`` → (``score``, ``last``); ``@mean`` → (None, ``mean``); ``fc`` → (``fc``, None)."""
    if spec is None or SEPARATOR not in spec:
        return HeadChoice(spec, None)
    name, pool = spec.rsplit(SEPARATOR, 1)
    if pool not in POOLS:
        raise InputError(f"--pool {pool}: expected one of {', '.join(POOLS)}")
    return HeadChoice(name or None, pool)


def join_head(head: str | None, pool: str | None) -> str | None:
    """The ``--head`` value that carries ``pool`` (None when neither is given)."""
    if pool is None:
        return head
    if pool not in POOLS:
        raise InputError(f"--pool {pool}: expected one of {', '.join(POOLS)}")
    return f"{head or ''}{SEPARATOR}{pool}"


def pools_itself(model: nn.Module) -> bool:
    """Whether ``model``'s forward picks one token's head scores as its logits (a Hugging Face
    ``*ForSequenceClassification`` whose head reads every token)."""
    return type(model).__name__.endswith(OWN_POOLING_SUFFIXES) and any(
        cls.__name__ == "PreTrainedModel" for cls in type(model).__mro__
    )


def check_pad_token(model: nn.Module, inputs: Inputs, where: str) -> None:
    """Before the forward pass: a decoder classifier without ``pad_token_id`` cannot pool a padded batch
    (transformers raises "Cannot handle batch sizes > 1"); say which file and which setting."""
    config = getattr(model, "config", None)
    if config is None or not pools_itself(model) or getattr(config, "pad_token_id", 0) is not None:
        return
    if getattr(model, "score", None) is None:  # encoders (BERT's classifier) pool inside the model
        return
    rows = inputs["input_ids"].shape[0] if isinstance(inputs, dict) and "input_ids" in inputs else 0
    if rows > 1:
        raise InputError(
            f"{where}: {type(model).__name__} finds each row's last token by config.json's pad_token_id, which "
            "is not set; set pad_token_id in config.json (the id your tokenizer pads with)"
        )


def _mask(inputs: Inputs, model: nn.Module, shape: tuple[int, int]) -> Tensor:
    """(N, T) bool: the non-pad tokens, from ``attention_mask``, else ``input_ids != pad_token_id``, else all."""
    if isinstance(inputs, dict):
        mask = inputs.get("attention_mask")
        if isinstance(mask, Tensor) and tuple(mask.shape) == shape:
            return mask.bool()
        ids = inputs.get("input_ids")
        pad = getattr(getattr(model, "config", None), "pad_token_id", None)
        if isinstance(ids, Tensor) and tuple(ids.shape) == shape and isinstance(pad, int):
            return ids != pad
    return torch.ones(shape, dtype=torch.bool)


def _last(mask: Tensor) -> Tensor:
    """(N,) index of each row's last True (0 for a row without any)."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions * mask.to(positions.dtype)).argmax(-1)


def pool_rule(features: Tensor, inputs: Inputs, model: nn.Module, pool: str) -> Tensor:
    """Features (N, T, d) pooled to (N, d) by ``pool`` over the non-pad tokens."""
    mask = _mask(inputs, model, (features.shape[0], features.shape[1])).to(features.device)
    rows = torch.arange(features.shape[0], device=features.device)
    if pool == "last":
        return features[rows, _last(mask)]
    if pool == "first":
        return features[rows, mask.to(torch.int64).argmax(-1)]
    weights = mask.to(features.dtype)  # (N, T)
    counts = weights.sum(1, keepdim=True).clamp_min(1.0)  # (N, 1)
    return (features * weights.unsqueeze(-1)).sum(1) / counts  # (N, d)


def pool_as_model(
    features: Tensor, scores: Tensor, logits: Tensor, inputs: Inputs, model: nn.Module, head: str
) -> Tensor:
    """Features (N, T, d) at the token whose head scores (N, T, C) are the model's logits (N, C)."""
    matches = (scores == logits.unsqueeze(1)).all(-1)  # (N, T)
    missing = (~matches.any(1)).nonzero().flatten()
    if missing.numel():
        raise InputError(
            f"head {head!r} reads every token {tuple(features.shape)} and the model's logits are not its "
            f"scores at any one token (row {int(missing[0])}); choose how to pool with --pool "
            f"{'|'.join(POOLS)}"
        )
    preferred = _last(_mask(inputs, model, (features.shape[0], features.shape[1])).to(matches.device))
    rows = torch.arange(features.shape[0], device=features.device)
    ties = matches.sum(1) > 1
    index = torch.where(ties & matches[rows, preferred], preferred, _last(matches))
    return features[rows, index]


def pooled(
    features: Tensor,
    scores: Tensor,
    logits: Tensor,
    inputs: Inputs,
    model: nn.Module,
    head: tuple[str, nn.Module],
    pool: str | None,
) -> tuple[Tensor, Tensor]:
    """(logits (N, C), features (N, d)) for a head whose input is (N, T, d); see the module docstring."""
    name, module = head
    if pool is not None:
        kept = pool_rule(features, inputs, model, pool)
        return module(kept), kept
    if logits.dim() == 2 and scores.dim() == 3 and pools_itself(model):
        return logits, pool_as_model(features, scores, logits, inputs, model, name)
    raise InputError(
        f"head {name!r} reads every token {tuple(features.shape)} and nc-audit does not know how "
        f"{type(model).__name__} pools them; choose with --pool {'|'.join(POOLS)} (last/first non-pad token, "
        "or their mean)"
    )
