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
from nc_audit.io.checkpoints.heads import is_usual_head_name


def _last_linear(prefix: str, module: nn.Module) -> tuple[str, nn.Linear] | None:
    """The last nn.Linear inside ``module`` (itself when it is one), with its dotted name."""
    if isinstance(module, nn.Linear):
        return prefix, module
    inner = [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not inner:
        return None
    name, linear = inner[-1]
    return f"{prefix}.{name}", linear


def find_head_module(
    model: nn.Module, head_name: str | None = None, num_classes: int | None = None
) -> tuple[str, nn.Linear]:
    """The classifier head as (dotted name, module).

    ``head_name`` names it (a block such as RoBERTa's ``classifier`` stands for its last nn.Linear).
    Otherwise: attribute ``head``; then, among the nn.Linear modules, those with ``num_classes`` outputs
    (when known), those with a usual head name (classifier, fc, head, score), and the last of them.
    """
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    known = ", ".join(name for name, _ in linears) or "none"
    if head_name is None:
        if isinstance(getattr(model, "head", None), nn.Linear):
            return "head", model.head
        if not linears:
            raise InputError(f"{type(model).__name__} has no nn.Linear layer to use as the classifier head")
        if num_classes is not None:
            linears = [item for item in linears if item[1].out_features == num_classes] or linears
        usual = [item for item in linears if is_usual_head_name(item[0])]
        return (usual or linears)[-1]
    try:
        module = model.get_submodule(head_name)
    except AttributeError:
        names = [name for name, _ in model.named_modules() if name]
        raise InputError(
            f"--head {head_name}: no such module;{did_you_mean(head_name, names)} nn.Linear modules: {known}"
        ) from None
    # a head block with a usual name (RoBERTa's ``classifier``) stands for its last nn.Linear
    found = _last_linear(head_name, module) if is_usual_head_name(head_name) else None
    if isinstance(module, nn.Linear):
        return head_name, module
    if found is None:
        raise InputError(
            f"--head {head_name} is a {type(module).__name__}, not nn.Linear; nn.Linear modules: {known}"
        )
    return found


class FeatureTap:
    """Context manager that records the input of a model's head on each forward (features (N, d)).

    ``with FeatureTap(model) as tap: logits = model(x)`` then ``tap.features``; the hook is removed on exit.
    Features keep their autograd graph, so losses on them can train the model.
    """

    def __init__(self, model: nn.Module, head_name: str | None = None) -> None:
        self.head_name, self.head = find_head_module(model, head_name)
        self._captured: list[Tensor] = []
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def _record(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self._captured.append(inputs[0])

    def __enter__(self) -> FeatureTap:
        self._captured.clear()
        self._handle = self.head.register_forward_pre_hook(self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @property
    def features(self) -> Tensor:
        """The head's input from the single forward call made inside the block. (N, d)."""
        if len(self._captured) != 1:
            raise InputError(
                f"head {self.head_name!r} ran {len(self._captured)} times in one forward, expected once"
            )
        return self._captured[0]


def call_model(model: nn.Module, inputs: Inputs) -> Any:
    """``model(inputs)``, or ``model(**inputs)`` for named inputs."""
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def logits_of(output: Any) -> Tensor:
    """The logits in a model's output: the tensor itself, ``output.logits`` / ``output["logits"]``
    (Hugging Face), or the first tensor of a tuple."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, dict) and isinstance(output.get("logits"), Tensor):
        return output["logits"]
    if isinstance(getattr(output, "logits", None), Tensor):
        return output.logits
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
    ``inputs``: a tensor, or a dict of named tensors passed as keyword arguments."""
    with FeatureTap(model, head_name) as tap:
        logits = logits_of(call_model(model, inputs))  # (N, C)
    features = tap.features  # (N, d)
    if logits.dim() != 2 or features.dim() != 2:
        raise InputError(
            f"head {tap.head_name!r} maps {tuple(features.shape)} to {tuple(logits.shape)}; expected (N, d) to (N, C)"
        )
    return logits, features
