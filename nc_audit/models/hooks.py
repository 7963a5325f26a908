"""Features as the head's input: a forward pre-hook on the classifier head, never a copy of forward().

Inputs are one tensor (passed positionally) or a dict of named tensors (passed as keyword arguments,
as Hugging Face models take them); outputs may be the logits, a tuple whose first element they are,
or an object or dict with ``logits`` (Hugging Face's ModelOutput).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError, did_you_mean
from nc_audit.core.inputs import Inputs
from nc_audit.io.checkpoints.heads import POOL_SEPARATOR, is_usual_head_name
from nc_audit.models.head_param import ParameterHead, ParameterTap, bare_matrices, find_parameter
from nc_audit.models.pooling import pooled, split_head

#: The classifier head: an nn.Linear, or a 2-D parameter the model applies with F.linear (same attributes).
HeadLayer = nn.Linear | ParameterHead


def _last_linear(prefix: str, module: nn.Module) -> tuple[str, nn.Linear] | None:
    """The last nn.Linear inside ``module`` (itself when it is one), with its dotted name."""
    if isinstance(module, nn.Linear):
        return prefix, module
    inner = [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not inner:
        return None
    name, linear = inner[-1]
    return f"{prefix}.{name}", linear


def _candidates(model: nn.Module) -> str:
    """The layers that could be the head, with their shapes: nn.Linear modules and bare 2-D parameters."""
    items = [
        f"{name} {tuple(m.weight.shape)}" for name, m in model.named_modules() if isinstance(m, nn.Linear)
    ]
    items += [f"{name} {tuple(p.shape)} (parameter)" for name, p in bare_matrices(model)]
    shown = ", ".join(items[:10]) + (f" and {len(items) - 10} more" if len(items) > 10 else "")
    return shown or "none"


def _detected(model: nn.Module, num_classes: int | None) -> tuple[str, HeadLayer]:
    """The head when none is named: see :func:`find_head_module`; refused when it is not certain."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        return "head", head
    bare = bare_matrices(model)
    if num_classes is not None:  # a parameter with as many rows as there are classes may be the head
        bare = [(name, p) for name, p in bare if p.shape[0] == num_classes]
    elif any(is_usual_head_name(name) for name, _ in linears):
        bare = []  # a layer named like a head (fc, classifier, head, score) and no class count to doubt it
    if bare:
        raise InputError(
            f"{type(model).__name__}: the classifier head cannot be identified with certainty (a parameter "
            f"outside any nn.Linear may be applied with F.linear); candidates: {_candidates(model)}; choose "
            "one with --head NAME (a module, or a parameter)"
        )
    if not linears:
        raise InputError(
            f"{type(model).__name__} has no nn.Linear layer to use as the classifier head; name a module or a "
            "parameter with --head NAME"
        )
    if num_classes is not None:
        linears = [item for item in linears if item[1].out_features == num_classes] or linears
    usual = [item for item in linears if is_usual_head_name(item[0])]
    return (usual or linears)[-1]


def find_head_module(
    model: nn.Module, head_name: str | None = None, num_classes: int | None = None
) -> tuple[str, HeadLayer]:
    """The classifier head as (dotted name, module); the name keeps a ``@POOL`` rule it was given.

    ``head_name`` names a module (a block such as RoBERTa's ``classifier`` stands for its last nn.Linear)
    or a 2-D parameter applied with F.linear (a :class:`ParameterHead`). Otherwise: attribute ``head``;
    then, among the nn.Linear modules, those with ``num_classes`` outputs (when known), those with a
    usual head name (classifier, fc, head, score), and the last of them. A bare 2-D parameter that could
    be the head (as many rows as classes; or, with no class count, when no layer has a usual head name)
    makes that guess uncertain, and it is refused with the candidates.
    """
    choice = split_head(head_name)
    suffix = "" if choice.pool is None else f"{POOL_SEPARATOR}{choice.pool}"
    if choice.name is None:
        name, module = _detected(model, num_classes)
        return name + suffix, module
    name, module = _named(model, choice.name)
    return name + suffix, module


def _named(model: nn.Module, head_name: str) -> tuple[str, HeadLayer]:
    """The module or parameter ``--head`` names."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    known = ", ".join(name for name, _ in linears) or "none"
    parameter = find_parameter(model, head_name)
    if parameter is not None:
        owner = head_name.rpartition(".")[0]
        owner_module = model.get_submodule(owner)
        if isinstance(owner_module, nn.Linear) and head_name.endswith(".weight"):
            return owner, owner_module  # fc.weight is the nn.Linear fc
        return head_name, parameter
    try:
        module = model.get_submodule(head_name)
    except AttributeError:
        names = [name for name, _ in model.named_modules() if name]
        names += [name for name, _ in model.named_parameters()]
        raise InputError(
            f"--head {head_name}: no such module or parameter;{did_you_mean(head_name, names)} candidates: "
            f"{_candidates(model)}"
        ) from None
    # a head block with a usual name (RoBERTa's ``classifier``) stands for its last nn.Linear
    found = _last_linear(head_name, module) if is_usual_head_name(head_name) else None
    if isinstance(module, nn.Linear):
        return head_name, module
    if found is None:
        raise InputError(
            f"--head {head_name} is a {type(module).__name__}, not nn.Linear; nn.Linear modules: {known}; "
            "a head applied with F.linear is named by its parameter (--head MODULE.PARAMETER)"
        )
    return found


class FeatureTap:
    """Context manager that records the input of a model's head on each forward (features (N, d)).

    ``with FeatureTap(model) as tap: logits = model(x)`` then ``tap.features``; the hook is removed on exit.
    Features keep their autograd graph, so losses on them can train the model. A head named by a
    parameter is followed through the forward (:mod:`nc_audit.models.head_param`).
    """

    def __init__(self, model: nn.Module, head_name: str | None = None) -> None:
        self.head_name, self.head = find_head_module(model, head_name)
        self.pool = split_head(self.head_name).pool
        self._captured: list[Tensor] = []
        self._scores: list[Tensor] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._parameter: ParameterTap | None = None

    def _record(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self._captured.append(inputs[0])

    def _record_output(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if isinstance(output, Tensor):
            self._scores.append(output)

    def __enter__(self) -> FeatureTap:
        self._captured.clear()
        self._scores.clear()
        if isinstance(self.head, ParameterHead):
            self._parameter = ParameterTap(self.head)
            self._parameter.__enter__()
            return self
        self._handles = [
            self.head.register_forward_pre_hook(self._record),
            self.head.register_forward_hook(self._record_output),
        ]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._parameter is not None:
            tap, self._parameter = self._parameter, None
            tap.__exit__()
            if exc_info[0] is None:
                tap.call()  # the one application of the parameter in this forward (InputError otherwise)

    def _only(self, captured: list[Tensor], what: str) -> Tensor:
        if len(captured) != 1:
            raise InputError(
                f"head {self.head_name!r} ran {len(captured)} times in one forward, expected once ({what})"
            )
        return captured[0]

    @property
    def features(self) -> Tensor:
        """The head's input from the single forward call made inside the block. (N, d), or (N, T, d)
        for a head that reads every token (pooled by :func:`forward_with_features`)."""
        if isinstance(self.head, ParameterHead):
            call = self.head.applied
            if call is None or self._parameter is not None:
                raise InputError(f"--head {self.head_name}: read the features after the forward pass's block")
            return call.features
        return self._only(self._captured, "its input")

    @property
    def scores(self) -> Tensor | None:
        """The head's own output in that forward (None for a parameter head or when not a tensor)."""
        return self._scores[0] if len(self._scores) == 1 else None


def call_model(model: nn.Module, inputs: Inputs) -> Any:
    """``model(inputs)``, or ``model(**inputs)`` for named inputs."""
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def logits_of(output: Any) -> Tensor:
    """The logits in a model's output: the tensor itself, ``output.logits`` / ``output["logits"]``
    (Hugging Face), or the first tensor of a tuple."""
    if isinstance(output, Tensor):
        return output
    logits = output.get("logits") if isinstance(output, dict) else getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, Tensor):
                return item
    raise InputError(
        f"the model returned a {type(output).__name__}; expected logits, a tuple starting with them, "
        "or an output with .logits"
    )


def forward_with_features(
    model: nn.Module, inputs: Inputs, head_name: str | None = None
) -> tuple[Tensor, Tensor]:
    """One forward pass returning (logits (N, C), features (N, d)); features are the head's input.
    ``inputs``: a tensor, or a dict of named tensors passed as keyword arguments. A head that reads
    every token (N, T, d) is pooled as the model pools it, or by its ``@POOL`` rule (models/pooling.py)."""
    with FeatureTap(model, head_name) as tap:
        logits = logits_of(call_model(model, inputs))  # (N, C)
    features = tap.features  # (N, d) or (N, T, d)
    if features.dim() == 3 and (logits.dim() == 2 or tap.pool is not None):
        scores = tap.scores if tap.scores is not None else tap.head(features)
        logits, features = pooled(
            features, scores, logits, inputs, model, (tap.head_name, tap.head), tap.pool
        )
    if logits.dim() != 2 or features.dim() != 2:
        raise InputError(
            f"head {tap.head_name!r} maps {tuple(features.shape)} to {tuple(logits.shape)}; expected (N, d) to (N, C)"
        )
    return logits, features
