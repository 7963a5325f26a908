"""A head that is a parameter, not an nn.Linear: ``--head W`` names a 2-D ``Parameter`` that the model
uses through ``F.linear`` (a cosine head ``F.linear(normalize(h), normalize(W))``, a tied unembedding, a
head without bias).

How its input is found: while the model runs, a ``TorchFunctionMode`` watches the top-level torch calls;
tensors computed from the parameter alone (``normalize(W)``, ``W * s``, ``W.t()``) are followed, and the
``F.linear`` (or ``matmul``) that consumes one of them gives the head: its first argument is the feature
(the head's input, normalised when the model normalises it) and its weight argument the head matrix
(C, d) the model really applies. Raw inputs are never taken for features: a model whose forward never
uses the parameter that way is refused with the reason. The normalisation is named in the conventions
(:func:`describe`).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional
from torch.overrides import TorchFunctionMode

from nc_audit.core.errors import InputError

#: Matrix products that may apply the head: (input, weight) arguments, weight as (C, d) or its transpose.
_LINEAR = {functional.linear}
_MATMUL = {torch.matmul, Tensor.matmul, Tensor.__matmul__, torch.mm, Tensor.mm}
#: How close to 1 every row norm must be for rows to count as L2-normalised.
_UNIT = 1e-4


@dataclass(frozen=True)
class LinearCall:
    """One application of the head: features (N, d) or (N, T, d), weight (C, d), bias (C,) or None."""

    features: Tensor
    weight: Tensor
    bias: Tensor | None


class _Follow(TorchFunctionMode):
    """Records every ``F.linear``/``matmul`` whose weight is the parameter or computed from it alone."""

    def __init__(self, parameter: Tensor) -> None:
        super().__init__()
        self.parameter = parameter
        self.derived: list[Tensor] = [parameter]  # kept alive: their ids stay theirs
        self.calls: list[LinearCall] = []

    def _is_derived(self, value: object) -> bool:
        return isinstance(value, Tensor) and any(value is item for item in self.derived)

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)]
        if func in _LINEAR and len(args) >= 2 and self._is_derived(args[1]):
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            self.calls.append(LinearCall(args[0], args[1], bias))
        elif func in _MATMUL and len(args) == 2 and self._is_derived(args[1]) and args[1].dim() == 2:
            # x @ Wᵀ with Wᵀ followed: the weight is its transpose
            self.calls.append(LinearCall(args[0], args[1].t(), None))
        elif (
            isinstance(out, Tensor)
            and out.dim() == 2
            and out.numel() == self.parameter.numel()
            and any(self._is_derived(t) for t in tensors)
            and all(self._is_derived(t) or t.numel() <= out.shape[0] for t in tensors)
        ):
            self.derived.append(out)  # normalize(W), W * s, W.t(), W / ‖W‖ ...
        return out


class ParameterHead(nn.Module):
    """The head named by a parameter: ``weight`` is the matrix the model applied at its last forward
    (the parameter itself until then), ``forward`` applies it like the model does."""

    def __init__(self, name: str, parameter: nn.Parameter, bias: Tensor | None = None) -> None:
        super().__init__()
        self.name = name
        self.parameter = parameter
        self.applied: LinearCall | None = None
        self._bias = bias

    @property
    def weight(self) -> Tensor:  # (C, d) as the model applies it
        return self.parameter if self.applied is None else self.applied.weight

    @property
    def bias(self) -> Tensor | None:
        return self._bias if self.applied is None else self.applied.bias

    @property
    def out_features(self) -> int:
        return int(self.parameter.shape[0])

    @property
    def in_features(self) -> int:
        return int(self.parameter.shape[1])

    def register_forward_pre_hook(self, *args: Any, **kwargs: Any) -> Any:
        """No module runs as this head, so a hook on it would never fire: said at once, not silently."""
        raise InputError(
            f"head {self.name!r} is a parameter, followed through the forward pass (nc_audit.models.hooks."
            "FeatureTap), not by a module hook; name the module that applies it"
        )

    def forward(self, features: Tensor) -> Tensor:
        """Logits (N, C) from features (N, d), as the model applies the head."""
        return functional.linear(
            features, self.weight.to(features.dtype), None if self.bias is None else self.bias
        )

    def normalisation(self) -> str:
        """How the model applies the parameter, for the conventions: ``cosine`` (features and rows
        L2-normalised), ``normalised rows``, or ``linear``."""
        if self.applied is None:
            return "linear"
        rows = _unit_rows(self.applied.weight)
        features = _unit_rows(self.applied.features.reshape(-1, self.applied.features.shape[-1]))
        if rows and features:
            return "cosine (features and head rows L2-normalised before F.linear)"
        return "head rows L2-normalised before F.linear" if rows else "linear"


def _unit_rows(matrix: Tensor) -> bool:
    norms = matrix.detach().double().norm(dim=-1)
    return bool(norms.numel()) and bool(((norms - 1.0).abs() < _UNIT).all())


class ParameterTap:
    """Context manager: the call that applies ``head``'s parameter during one forward of the model."""

    def __init__(self, head: ParameterHead) -> None:
        self.head = head
        self._mode: _Follow | None = None

    def __enter__(self) -> ParameterTap:
        self.head.applied = None  # never a previous forward's call
        self._mode = _Follow(self.head.parameter)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)

    def call(self) -> LinearCall:
        """The one application of the parameter in the forward (InputError otherwise)."""
        calls = [] if self._mode is None else self._mode.calls
        if len(calls) != 1:
            raise InputError(
                f"--head {self.head.name}: the forward pass applied the parameter {len(calls)} times through "
                "F.linear or matmul (directly, or after normalize/transpose/scaling), expected once; name a "
                "module whose input is the feature, or give your model a head module"
            )
        self.head.applied = calls[0]
        return calls[0]


#: One ParameterHead per model and name, so what a forward found (the applied weight) is what callers see.
_HEADS: weakref.WeakKeyDictionary[nn.Module, dict[str, ParameterHead]] = weakref.WeakKeyDictionary()


def find_parameter(model: nn.Module, name: str) -> ParameterHead | None:
    """The ParameterHead for a 2-D floating parameter ``name`` (its bias is whatever the forward passes
    to F.linear), or None when ``name`` is not a parameter."""
    known = _HEADS.setdefault(model, {})
    if name in known and any(known[name].parameter is p for p in model.parameters()):
        return known[name]
    parameters = dict(model.named_parameters())
    parameter = parameters.get(name)
    if parameter is None:
        return None
    if parameter.dim() != 2 or not parameter.is_floating_point():
        raise InputError(
            f"--head {name}: the parameter has shape {tuple(parameter.shape)} ({parameter.dtype}); a head is a "
            "2-D floating (C, d) matrix"
        )
    known[name] = ParameterHead(name, parameter)
    return known[name]


def bare_matrices(model: nn.Module) -> list[tuple[str, Tensor]]:
    """2-D floating parameters that no standard layer owns (a module's own ``nn.Parameter``): each could
    be a head applied with F.linear, so a detected nn.Linear beside them is not certain."""
    standard = (nn.Linear, nn.Embedding, nn.EmbeddingBag, nn.Bilinear, nn.LayerNorm, nn.MultiheadAttention)
    found = []
    for prefix, module in model.named_modules():
        if isinstance(module, standard) or type(module).__module__.startswith("torch.nn"):
            continue
        if type(module).__module__.startswith("transformers"):
            continue  # transformers' own layers (Conv1D, position tables) are known, their heads named
        for name, parameter in module.named_parameters(recurse=False):
            if parameter.dim() == 2 and parameter.is_floating_point() and parameter.shape[0] >= 2:
                found.append((f"{prefix}.{name}" if prefix else name, parameter))
    return found
