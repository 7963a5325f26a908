"""A Hugging Face config (``config.json``, or the config in a ``huggingface`` record) bounded as data
before transformers sees it.

transformers turns a config's numbers into Python objects and modules before a single weight is read:
``num_labels: 1e8`` makes a 1e8-entry ``id2label`` dict, ``num_hidden_layers: 100000`` builds 100,000
layers (even on the meta device that is minutes and gigabytes of Python objects). So, before any
transformers call: ``config.json`` is at most :data:`MAX_CONFIG_BYTES`; counts of layers, blocks and
experts are at most :data:`MAX_LAYERS` (a ``depths`` list in total); ``num_labels`` and the label maps
hold at most :data:`MAX_LABELS` classes; every other number is finite and at most :data:`MAX_NUMBER` in
size; nesting is at most :data:`MAX_DEPTH` deep. What is left (hidden sizes, vocabularies) costs
nothing on the meta device, where the model is then built and its bytes compared with the checkpoint's
(:mod:`nc_audit.models.meta_build`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.hf_folder import MAX_CONFIG_BYTES

MAX_LAYERS = 1024
MAX_LABELS = 100_000
MAX_NUMBER = 2**31
MAX_DEPTH = 16
__all__ = ["MAX_CONFIG_BYTES", "check_config", "check_config_file", "count_cap"]
#: Parts of a key that make its value a count of stacked modules (layers, blocks, experts).
_STACK_PARTS = ("layers", "n_layer", "depth", "blocks", "experts")
_LABEL_KEYS = ("num_labels", "num_classes")
_LABEL_MAPS = ("id2label", "label2id")


def count_cap(key: str) -> int | None:
    """The largest value a count named ``key`` may hold (layers, blocks, classes), or None."""
    lowered = key.lower()
    if lowered in _LABEL_KEYS:
        return MAX_LABELS
    if any(part in lowered for part in _STACK_PARTS):
        return MAX_LAYERS
    return None


def _number_problem(key: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key} is {value}"
    cap = count_cap(key) or MAX_NUMBER
    return f"{key} is {value:g} (at most {cap:,})" if abs(value) > cap else None


def _problem(key: str, value: Any, depth: int) -> str | None:
    """The first reason the config value ``value`` under ``key`` is out of bounds, or None."""
    if depth > MAX_DEPTH:
        return f"{key} is nested more than {MAX_DEPTH} deep"
    if isinstance(value, dict):
        if key in _LABEL_MAPS and len(value) > MAX_LABELS:
            return f"{key} holds {len(value):,} classes (at most {MAX_LABELS:,})"
        return next((p for k, v in value.items() if (p := _problem(str(k), v, depth + 1))), None)
    if isinstance(value, (list, tuple)):
        if count_cap(key) is not None:
            numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if sum(abs(v) for v in numbers) > (count_cap(key) or 0):
                return f"{key} adds up to {sum(abs(v) for v in numbers):g} (at most {count_cap(key):,})"
        return next((p for v in value if (p := _problem(key, v, depth + 1))), None)
    return _number_problem(key, value)


def check_config(values: Any, where: str) -> dict[str, Any]:
    """``values`` (a config as plain data) when every number is within the bounds of the module
    docstring; InputError naming ``where`` and the value otherwise."""
    if not isinstance(values, dict):
        raise InputError(f"{where}: the model config is a {type(values).__name__}, not a JSON object")
    problem = _problem("config", values, 0)
    if problem is not None:
        raise InputError(
            f"{where}: the model config is out of bounds ({problem}); nc-audit does not build such a model"
        )
    return values


def check_config_file(folder: Path, values: Any) -> dict[str, Any]:
    """A save_pretrained folder's ``config.json`` (already read as ``values``) within the size cap and
    the bounds of :func:`check_config`."""
    path = folder / "config.json"
    try:
        size = path.stat().st_size
    except OSError as error:
        raise InputError(f"{path}: cannot read config.json ({error.strerror})") from None
    if size > MAX_CONFIG_BYTES:
        raise InputError(
            f"{path}: config.json is {size / 2**20:.1f} MiB (at most {MAX_CONFIG_BYTES // 2**20} MiB for a "
            "model config); nc-audit does not read it"
        )
    return check_config(values, str(path))
