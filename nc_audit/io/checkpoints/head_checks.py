"""What a classifier head may be: a real, dense, finite (C, d) weight and a bias of C values.

The same rules for a checkpoint's tensors (``fc.weight``) and a dump's datasets (``/head/weight``):
integer, boolean, complex, string, float128, sparse and meta tensors are refused with the reason (a
head is never picked among hidden layers because the real one has an odd dtype), and a bias of shape
(C, 1) or (1, C) is taken as the (C,) bias it is; any other bias shape is refused, never dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nc_audit.core.errors import InputError
from nc_audit.core.limits import check_head_memory

if TYPE_CHECKING:
    import numpy as np
    import torch

#: NumPy dtype kinds and sizes a stored head may have (float16/32/64).
REAL_ITEMSIZES = (2, 4, 8)


def array_dtype_problem(dtype: np.dtype) -> str | None:
    """Why a stored array of ``dtype`` cannot be a head (or features), or None when it can."""
    kind = dtype.kind
    if kind == "f":
        return None if dtype.itemsize in REAL_ITEMSIZES else f"float{dtype.itemsize * 8} (long double)"
    names = {"c": "complex values", "i": "integer values", "u": "unsigned integer values",
             "b": "boolean values", "S": "strings", "U": "strings", "O": "Python objects",
             "V": "compound records"}  # fmt: skip
    return f"{names.get(kind, 'non-numeric values')} ({dtype})"


def tensor_problem(tensor: Any) -> str | None:
    """Why a checkpoint tensor cannot be part of a head, as a phrase after its name, or None when it can."""
    import torch

    real = "; a head must be real floating point"
    if not isinstance(tensor, torch.Tensor):
        return f"is a {type(tensor).__name__}, not a tensor"
    if tensor.layout != torch.strided:
        return f"is a sparse tensor ({tensor.layout}); save dense weights (tensor.to_dense())"
    if tensor.is_meta:
        return "is a meta tensor, which holds no data; save the weights themselves"
    if tensor.is_complex():
        return f"holds complex values ({tensor.dtype}){real}"
    if not tensor.is_floating_point():
        kind = "boolean" if tensor.dtype == torch.bool else "integer"
        return f"holds {kind} values ({tensor.dtype}){real}"
    return None


def head_weight(where: object, name: str, weight: torch.Tensor) -> torch.Tensor:
    """The weight as float64 (C, d), or InputError naming ``where`` and ``name`` with the reason."""
    import torch

    problem = tensor_problem(weight)
    if problem is not None:
        raise InputError(f"{where}: the head weight {name} {problem}")
    if weight.ndim != 2:
        raise InputError(
            f"{where}: the head weight {name} must be 2-D (C, d), found shape {tuple(weight.shape)}"
        )
    check_head_memory(where, name, tuple(weight.shape))
    return weight.detach().to(torch.float64)


def head_bias(where: object, name: str, bias: torch.Tensor | None, num_classes: int) -> torch.Tensor | None:
    """The bias as float64 (C,): a (C, 1) or (1, C) bias is flattened; anything else is InputError."""
    import torch

    if bias is None:
        return None
    problem = tensor_problem(bias)
    if problem is not None:
        raise InputError(f"{where}: the head bias {name} {problem}")
    shape = tuple(bias.shape)
    if bias.numel() != num_classes or sum(size != 1 for size in shape) > 1 or not shape:
        raise InputError(
            f"{where}: the head bias {name} has shape {shape}; a head of {num_classes} classes needs "
            f"({num_classes},) (or ({num_classes}, 1))"
        )
    return bias.detach().reshape(num_classes).to(torch.float64)
