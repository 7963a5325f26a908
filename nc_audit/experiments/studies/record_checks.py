"""A resumed study record is checked like a fresh measurement before it is reported (issue 19): the fields
its study reads must be there with the right type, and every metric must lie in its range
(report/ranges.py). A record that fails is refused, naming the file, the line and the field: a tampered
DIR/runs.jsonl is never reported as measured.
"""

from __future__ import annotations

import math
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.report.ranges import check_ranges

_NUMBER = "number"
_OPTIONAL_NUMBER = "number or null"
_TEXT = "string"
_OBJECT = "object"
_LIST = "list"

#: The fields each study kind reads back from a record (dotted paths), with their type.
REQUIRED: dict[str, dict[str, str]] = {
    "prune": {
        "sparsity": _NUMBER, "kept": _OBJECT, "kept.fraction": _NUMBER, "checkpoint": _TEXT,
        "accuracy": _NUMBER, "test_accuracy": _OPTIONAL_NUMBER, "finetune_losses": _LIST,
        "report": _OBJECT, "report.metrics": _OBJECT, "report.targets": _OBJECT, "report.features": _OBJECT,
        **{f"report.metrics.{key}": _OPTIONAL_NUMBER for key in ("nc1", "nc4", "mir", "hdr")},
    },
    "label-smoothing": {
        "epsilon": _NUMBER, "seed": _NUMBER, "checkpoint": _TEXT,
        **{f"{split}.{field}": kind for split in ("train", "test")
           for field, kind in (("accuracy", _NUMBER), ("metrics", _OBJECT))},
        **{f"train.metrics.{key}": _OPTIONAL_NUMBER for key in ("nc1", "nc4", "mir", "hdr")},
    },
    "regularizer": {
        "lam": _NUMBER, "setting": _TEXT, "seed": _NUMBER, "checkpoint": _TEXT,
        **{f"{split}.{field}": kind for split in ("train", "test")
           for field, kind in (("accuracy", _NUMBER), ("metrics", _OBJECT))},
        **{f"train.metrics.{key}": _OPTIONAL_NUMBER for key in ("nc1", "nc4", "mir", "hdr", "h_head")},
    },
    "semi-supervised": {
        "labels_per_class": _NUMBER, "method": _TEXT, "setting": _TEXT, "seed": _NUMBER, "checkpoint": _TEXT,
        "stats": _OBJECT,
        **{f"{split}.{field}": kind for split in ("train", "test")
           for field, kind in (("accuracy", _NUMBER), ("metrics", _OBJECT))},
        **{f"train.metrics.{key}": _OPTIONAL_NUMBER for key in ("nc1", "nc4", "mir", "hdr")},
    },
    "lmc": {
        "seed": _NUMBER, "setting": _TEXT, "spawn_epoch": _OPTIONAL_NUMBER, "checkpoints": _LIST,
        "train.curve": _LIST, "test.curve": _LIST,
    },
}  # fmt: skip
#: The seeds study of pruning (study prune): a prune record of one seed's network, with that network's SHA-256.
REQUIRED["prune-seeds"] = {**REQUIRED["prune"], "seed": _NUMBER, "trained": _TEXT}

#: Leaves outside a metrics object that hold a share or a non-negative amount, wherever they appear.
_UNIT_FIELDS = ("accuracy", "test_accuracy", "ncc_accuracy", "fraction", "sparsity", "mask_rate",
                "pseudo_label_accuracy", "alpha")  # fmt: skip
_NON_NEGATIVE_FIELDS = ("seconds", "loss", "total", "kept", "epsilon", "seed", "labels_per_class", "lam",
                        "spawn_epoch", "load_average")  # fmt: skip


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _matches(value: Any, kind: str) -> bool:
    if kind == _NUMBER:
        return _is_number(value)
    if kind == _OPTIONAL_NUMBER:
        return value is None or _is_number(value)
    if kind == _TEXT:
        return isinstance(value, str)
    if kind == _OBJECT:
        return isinstance(value, dict)
    return isinstance(value, list)


def _lookup(record: dict[str, Any], path: str) -> tuple[bool, Any]:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def check_record(record: Any, kind: str, where: str) -> None:
    """InputError naming ``where`` (``FILE line N``) and the field when ``record`` is not a record this
    study kind wrote: not an object, no string ``key``, a missing or mistyped field, a non-finite number,
    or a metric outside its range."""
    if not isinstance(record, dict):
        raise InputError(
            f"--resume: {where}: not a run record (a JSON object), found {type(record).__name__}"
        )
    if not isinstance(record.get("key"), str):
        raise InputError(f"--resume: {where}: field 'key' is missing or not a string")
    for path, expected in REQUIRED.get(kind, {}).items():
        found, value = _lookup(record, path)
        if not found:
            raise InputError(f"--resume: {where}: field '{path}' is missing (not a record of a {kind} run)")
        if not _matches(value, expected):
            raise InputError(f"--resume: {where}: field '{path}' must be a {expected}, found {value!r:.60}")
    _check_values(record, "", where)


def _check_values(value: Any, path: str, where: str) -> None:
    """Every number finite, every share in [0, 1], every metrics object within its ranges."""
    if isinstance(value, dict):
        if path.endswith("metrics") and path != "":
            _check_metrics(value, path, where)
        for key, item in value.items():
            _check_values(item, f"{path}.{key}" if path else str(key), where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f"{path}[{index}]", where)
    elif _is_number(value):
        name = path.rsplit(".", 1)[-1]
        if not math.isfinite(value):
            raise InputError(f"--resume: {where}: field '{path}' = {value} is not a finite number")
        if name in _UNIT_FIELDS and not 0.0 <= value <= 1.0:
            raise InputError(f"--resume: {where}: field '{path}' = {value:g} lies outside [0, 1]")
        if name in _NON_NEGATIVE_FIELDS and value < 0:
            raise InputError(f"--resume: {where}: field '{path}' = {value:g} is negative")


def _check_metrics(metrics: dict[str, Any], path: str, where: str) -> None:
    for key, value in metrics.items():
        if value is not None and not _is_number(value):
            raise InputError(
                f"--resume: {where}: field '{path}.{key}' must be a number or null, found {value!r:.60}"
            )
    checked, _ = check_ranges(metrics)
    for key, value in metrics.items():
        if value is not None and checked[key] is None:
            raise InputError(f"--resume: {where}: field '{path}.{key}' = {value:g} lies outside its range")
