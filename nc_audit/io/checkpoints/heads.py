"""The classifier head of a checkpoint: W (C, d) and b (C,), named or detected.

Detection order, for a checkpoint that does not name its head (nc-audit's own name it in their
architecture record): among the 2-D floating weights of shape (C, d) that fit the features,

1. those with C equal to the number of classes (``num_classes``: from the labels, or a Hugging Face
   config's ``num_labels``), when that is known;
2. then those whose module has a usual head name (``classifier``, ``fc``, ``head``, ``score``, or ends
   in ``.out_proj`` inside a ``classifier``);
3. then the last one in module order. A safetensors file stores keys sorted by name, so "last" means
   nothing there: more than one candidate left is ambiguous, and the error lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from nc_audit.core.errors import InputError, did_you_mean
from nc_audit.io.checkpoints.head_checks import head_bias, head_weight

if TYPE_CHECKING:
    from nc_audit.io.checkpoints.record import Checkpoint

#: Module names that usually hold a classifier's head (the last component of the dotted name).
USUAL_HEAD_NAMES = ("classifier", "fc", "head", "score")
#: Joins a head's name and the rule that pools its per-token input (``score@last``; models/pooling.py).
POOL_SEPARATOR = "@"


def head_module_name(spec: str) -> str:
    """The module or parameter name of a ``--head`` value, without its pooling rule (``score@last`` → ``score``)."""
    return spec.rsplit(POOL_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class Head:
    """The classifier head: W (C, d) and optional b (C,), with the state-dict name it came from."""

    name: str
    weight: torch.Tensor
    bias: torch.Tensor | None

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.weight.shape[1])


def is_usual_head_name(name: str) -> bool:
    """Whether a module name looks like a classifier head: its last component is a usual head name, or it
    is the output projection of a ``classifier`` block (RoBERTa's ``classifier.out_proj``)."""
    parts = name.split(".")
    return parts[-1] in USUAL_HEAD_NAMES or (len(parts) > 1 and parts[-2] in USUAL_HEAD_NAMES)


def find_head(
    checkpoint: Checkpoint,
    feature_dim: int | None = None,
    min_classes: int = 2,
    head_name: str | None = None,
    num_classes: int | None = None,
) -> Head:
    """The classifier head: ``head_name`` if given, else the architecture record's head, else detected
    (see the module docstring; ``num_classes`` is the number of classes the labels hold, when known).
    Errors list the candidates and say how to choose."""
    state = checkpoint.state_dict
    matrices = _matrices(state)
    name = head_name or (checkpoint.architecture or {}).get("head")
    if isinstance(name, str):
        name = head_module_name(name)
    if name:
        name = name.removesuffix(".weight")
        if f"{name}.weight" not in state and checkpoint.stripped and name.startswith(checkpoint.stripped):
            name = name[len(checkpoint.stripped) :]  # a module name inside the wrapper (model.fc)
        weight = state.get(f"{name}.weight")
        if weight is None or weight.ndim != 2:
            names = [key.removesuffix(".weight") for key, _ in matrices]
            hint = did_you_mean(name, names) if head_name else ""
            raise InputError(
                f"{checkpoint.path}: no 2-D tensor '{name}.weight';{hint} 2-D weights: {_describe(matrices)}"
            )
        return _checked_head(checkpoint, name, weight)
    fits = [
        (key, w)
        for key, w in matrices
        if (feature_dim is None or w.shape[1] == feature_dim) and w.shape[0] >= min_classes
    ]
    if not fits:
        wanted = f"(C, {feature_dim})" if feature_dim is not None else "(C, d)"
        raise InputError(
            f"{checkpoint.path}: no classifier head of shape {wanted} found; 2-D weights: {_describe(matrices)}; "
            "choose one with --head NAME"
        )
    chosen = prefer_heads(fits, num_classes)
    if len(chosen) > 1 and not checkpoint.ordered:
        raise InputError(
            f"{checkpoint.path}: ambiguous classifier head, candidates {_describe(chosen)}; choose one with --head NAME"
        )
    key, weight = chosen[-1]
    name = key.removesuffix("weight").removesuffix(".")
    return _checked_head(checkpoint, name, weight)


def prefer_heads(
    fits: list[tuple[str, torch.Tensor]], num_classes: int | None
) -> list[tuple[str, torch.Tensor]]:
    """The candidates left after the preferences of the module docstring (rules 1 and 2), in order."""
    if num_classes is not None:
        # a head with fewer rows than the labels need cannot be the head at all
        fits = [item for item in fits if item[1].shape[0] >= num_classes] or fits
        exact = [item for item in fits if item[1].shape[0] == num_classes]
        fits = exact or fits
    usual = [item for item in fits if is_usual_head_name(item[0].removesuffix(".weight"))]
    return usual or fits


def _matrices(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """Every 2-D ``*weight`` tensor, whatever its dtype: a non-real one that sits where the head belongs
    is refused with the reason (io/head_checks.py), never skipped for a hidden layer."""
    return [(key, value) for key, value in state.items() if key.endswith("weight") and value.ndim == 2]


def _checked_head(checkpoint: Checkpoint, name: str, weight: torch.Tensor) -> Head:
    """The Head ``name`` after the checks of io/head_checks.py (real, dense, a bias of C values)."""
    W = head_weight(checkpoint.path, f"{name}.weight" if name else "weight", weight)
    bias_key = f"{name}.bias" if name else "bias"
    return Head(
        name, W, head_bias(checkpoint.path, bias_key, checkpoint.state_dict.get(bias_key), W.shape[0])
    )


def _describe(items: list[tuple[str, torch.Tensor]]) -> str:
    if not items:
        return "none"
    shown = ", ".join(f"{key} {tuple(value.shape)}" for key, value in items[:8])
    return shown + (f" and {len(items) - 8} more" if len(items) > 8 else "")
