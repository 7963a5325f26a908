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
from typing import TYPE_CHECKING, TypeGuard

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
    #: How the model applies a head named by a parameter (e.g. "cosine (...)"); None for a plain layer.
    applied: str | None = None

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
        if weight is None and _is_matrix(state.get(name)):  # a parameter applied with F.linear (--head W)
            return Head(name, head_weight(checkpoint.path, name, state[name]), None)
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
    if not key.endswith("weight"):
        return Head(key, head_weight(checkpoint.path, key, weight), None)
    name = key.removesuffix("weight").removesuffix(".")
    return _checked_head(checkpoint, name, weight)


def prefer_heads(
    fits: list[tuple[str, torch.Tensor]], num_classes: int | None
) -> list[tuple[str, torch.Tensor]]:
    """The candidates left after the preferences of the module docstring (rules 1 and 2), in order. A
    head with fewer rows than the labels need stays a candidate: the labels are checked against the head
    once it is found, so the message names that cause ("labels go up to 10 but the head has 10 classes")
    instead of a hidden layer taken for the head."""
    if num_classes is not None:
        exact = [item for item in fits if item[1].shape[0] == num_classes]
        fits = exact or fits
    usual = [item for item in fits if is_usual_head_name(item[0].removesuffix(".weight"))]
    return usual or fits


def _matrices(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """Every 2-D ``*weight`` tensor, whatever its dtype (a non-real one that sits where the head belongs
    is refused with the reason, io/checkpoints/head_checks.py, never skipped for a hidden layer), and every other 2-D
    floating tensor (a bare parameter, which a model may apply with F.linear: a cosine head's ``W``)."""
    return [
        (key, value)
        for key, value in state.items()
        if getattr(value, "ndim", 0) == 2 and (key.endswith("weight") or _is_matrix(value))
    ]


def _is_matrix(value: object) -> TypeGuard[torch.Tensor]:
    """A 2-D floating tensor (a parameter that may be a head)."""
    return isinstance(value, torch.Tensor) and value.ndim == 2 and value.is_floating_point()


def _checked_head(checkpoint: Checkpoint, name: str, weight: torch.Tensor) -> Head:
    """The Head ``name`` after the checks of io/checkpoints/head_checks.py (real, dense, a bias of C values)."""
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


#: The dump attribute that says how the model applied a parameter head (written by models/extract.py).
APPLIED_ATTR = "head_applied"
#: How close a stored head row must be to the checkpoint's row, normalised, to be that row as applied.
_ROW_TOLERANCE = 1e-5


def applied_head(checkpoint: Checkpoint, stored: Head | None, attrs: dict[str, str]) -> Head | None:
    """The head a dump extracted from ``checkpoint`` stored, when it is the checkpoint's parameter head
    as the model applied it (a cosine head's rows L2-normalised): each stored row must be the
    checkpoint's row or that row normalised, so a dump can never bring a head of its own. None otherwise."""
    applied = attrs.get(APPLIED_ATTR)
    if stored is None or not applied or attrs.get("checkpoint_sha256") != checkpoint.sha256:
        return None
    raw = checkpoint.state_dict.get(head_module_name(stored.name))
    if (
        raw is None
        or not _is_matrix(raw)
        or tuple(raw.shape) != tuple(stored.weight.shape)
        or stored.bias is not None
    ):
        return None
    rows = raw.detach().to(torch.float64)
    normalised = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
    for candidate in (rows, normalised):
        if torch.allclose(stored.weight, candidate, rtol=_ROW_TOLERANCE, atol=_ROW_TOLERANCE):
            return Head(stored.name, stored.weight, None, str(applied)[:200])
    return None
