"""The inputs of a measurement whose features are held in memory: arrays, a module's features, a batch.

:func:`memory_inputs` makes the :class:`nc_audit.measurement.resolve.MeasureInputs` that
:func:`nc_audit.measurement.resolve.resolve_inputs` makes for a dump — the same choice of splits (the
decisions from ``split``, the class means from ``means_split``, else ``train`` when there is one, else the
measured split), the same checks of the head — over splits held as
:class:`nc_audit.io.dumps.memory.MemoryRows`. :func:`nc_audit.measurement.collect.run_passes` then streams
them through the passes a dump goes through; nothing is written to disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.load import Head
from nc_audit.io.dumps.memory import MemoryRows
from nc_audit.io.dumps.reader import SplitInfo
from nc_audit.measurement.resolve import MeasureInputs, check_finite_head

#: The head's origin of a measurement from memory: no file, no hash.
NO_FILE: dict[str, Any] = {"path": None, "sha256": None}


def as_head(name: str, weight: Any, bias: Any, where: str) -> Head:
    """A float64 host Head from arrays or tensors: weight (C, d), bias (C,) or None."""
    W = torch.from_numpy(_host_array(f"{where}: head_weight", weight).astype(np.float64))
    b = (
        None
        if bias is None
        else torch.from_numpy(_host_array(f"{where}: head_bias", bias).astype(np.float64))
    )
    if W.dim() != 2:
        raise InputError(f"{where}: head_weight must be (C, d), found shape {tuple(W.shape)}")
    if b is not None and tuple(b.shape) != (W.shape[0],):
        raise InputError(f"{where}: head_bias has shape {tuple(b.shape)}, expected ({W.shape[0]},)")
    return Head(name, W, b)


def as_rows(name: str, features: Any, labels: Any, where: str) -> MemoryRows:
    """One split's rows from arrays or tensors (features (N, d) float or integer, labels (N,) integer)."""
    if isinstance(features, Tensor) and isinstance(labels, Tensor):
        H, y = features.detach(), labels.detach()
        if H.dim() != 2 or y.dim() != 1 or H.shape[0] != y.shape[0]:
            raise InputError(_shape_message(where, name, tuple(H.shape), tuple(y.shape)))
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise InputError(f"{where}: labels[{name}] must be integers, found {y.dtype}")
        if H.is_complex():
            raise InputError(f"{where}: features[{name}] must be real numbers, found {H.dtype}")
        return MemoryRows.of_tensors(H, y)
    X = _host_array(f"{where}: features[{name}]", features)
    y_np = _host_array(f"{where}: labels[{name}]", labels)
    if X.ndim != 2 or y_np.ndim != 1 or X.shape[0] != y_np.shape[0]:
        raise InputError(_shape_message(where, name, X.shape, y_np.shape))
    if y_np.dtype.kind not in "iu":
        raise InputError(f"{where}: labels[{name}] must be integers, found {y_np.dtype}")
    if X.dtype.kind in "iub":  # integer features: measured as float64
        X = X.astype(np.float64)
    elif X.dtype.type not in (np.float16, np.float32, np.float64):
        raise InputError(f"{where}: features[{name}] must be float16/32/64 or integers, found {X.dtype}")
    return MemoryRows(X, y_np.astype(np.int64, copy=False))


def _shape_message(where: str, name: str, features: tuple[int, ...], labels: tuple[int, ...]) -> str:
    return f"{where}: features[{name}] {features} and labels[{name}] {labels} must be (N, d) and (N,)"


def _host_array(name: str, value: Any) -> np.ndarray:
    """A NumPy array of ``value`` (tensors detached and brought to the host; bfloat16 as float32)."""
    try:
        if isinstance(value, Tensor):
            tensor = value.detach()
            if tensor.dtype == torch.bfloat16:
                tensor = tensor.to(torch.float32)
            return tensor.cpu().numpy()
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise InputError(f"{name} is not an array ({error})") from None


def memory_split(where: str, name: str | None, rows: MemoryRows) -> SplitInfo:
    """The SplitInfo of in-memory rows; ``where`` names them in messages (e.g. ``measure_arrays``);
    ``name`` None: rows without a split name, like a dump's root-level /features (split ``all``)."""
    if rows.num_samples == 0:
        raise InputError(f"{where}: the {name or 'given'} split holds 0 samples")
    return SplitInfo(Path(where), name, rows.num_samples, rows.feature_dim, rows.dtype, memory=rows)


def memory_inputs(
    where: str,
    splits: Mapping[str | None, MemoryRows],
    head: Head,
    origin: Mapping[str, Any],
    split: str | None = None,
    means_split: str | None = None,
) -> MeasureInputs:
    """The inputs of a measurement of in-memory splits, chosen and checked as for a dump (see the module
    docstring): the head must be finite and as wide as the features."""
    if not splits:
        raise InputError(f"{where}: no features were given")
    infos = {name: memory_split(where, name, rows) for name, rows in splits.items()}
    decisions = _pick(where, infos, split if split is not None else ("train" if "train" in infos else None))
    if means_split is not None:
        means = _pick(where, infos, means_split)
    elif decisions.split != "train" and "train" in infos:
        means = infos["train"]
    else:
        means = decisions
    if decisions.feature_dim == 0 or means.feature_dim == 0:
        raise InputError(f"{where}: the features have width d = 0; Neural Collapse needs d >= 1")
    widths = {info.feature_dim for info in infos.values()}
    if len(widths) > 1:
        raise InputError(f"{where}: the splits' features have different widths {sorted(widths)}")
    check_finite_head(head, Path(where))
    if head.feature_dim != decisions.feature_dim:
        raise InputError(
            f"{where}: features have dimension {decisions.feature_dim} but the head '{head.name}' expects "
            f"{head.feature_dim}; is --head the right layer?"
        )
    rest = {key: value for key, value in origin.items() if key not in ("path", "sha256", "head")}
    stated = {"path": origin.get("path"), "sha256": origin.get("sha256"), "head": head.name, **rest}
    return MeasureInputs(head, stated, means, decisions)


def _pick(where: str, infos: Mapping[str | None, SplitInfo], name: str | None) -> SplitInfo:
    if name is None:
        return next(iter(infos.values()))
    if None in infos and name in ("train", "all"):  # unnamed rows are every split, as a dump's /features
        return infos[None]
    if None in infos:
        raise InputError(f"{where}: no split '{name}'; the features were given without split names")
    if name not in infos:
        raise InputError(f"{where}: no split '{name}'; splits given: {', '.join(map(str, infos))}")
    return infos[name]
