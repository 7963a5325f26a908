"""Monitor: Neural Collapse and matrix information from inside a training loop, as a .jsonl trajectory.

::

    monitor = Monitor("runs/monitor.jsonl", every=20)
    for step in range(steps):
        logits, features = forward_with_features(model, x)      # features: the head's input (n, d)
        loss = ...
        monitor.log(step, features, y, model.head.weight, model.head.bias, loss=loss.item())

``log`` measures when ``step % every == 0`` (the step number decides, not how many times ``log`` was
called, so a resumed run logs the same steps). Each measurement is one line of the file: a report
record in the form of ``nc-audit-report/1`` plus ``step`` and ``label``, which ``nc-audit track
FILE.jsonl`` reads and plots. A line is written with one ``write`` and then flushed and fsynced, so a
crash leaves at most one truncated final line, which ``read_trajectory_jsonl`` skips with a warning.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.load import Head
from nc_audit.io.dumps.memory import MemoryRows
from nc_audit.measurement.jsonl import TruncatedLineWarning
from nc_audit.measurement.jsonl import read_trajectory_jsonl as read_trajectory_jsonl  # its home before
from nc_audit.measurement.memory import NO_FILE
from nc_audit.measurement.monitor_gates import MonitorGates
from nc_audit.measurement.options import MeasureOptions
from nc_audit.measurement.pipeline import measure_memory
from nc_audit.report.model import json_number

MONITOR_HEAD = "monitor"
#: The split name of a monitor record: the batch is both the means split and the decisions split.
BATCH = "batch"


def _scalar(name: str, value: Any) -> float | None:
    """An extra scalar as a float (None when not finite); tensors must hold one number."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise InputError(f"Monitor.log: {name} has shape {tuple(value.shape)}; pass one number")
        value = value.detach().item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"Monitor.log: {name}={value!r} is not a number")
    value = float(value)
    return value if math.isfinite(value) else None


class Monitor:
    """Appends one report record per measured step to a .jsonl file (see the module docstring).

    ``every``: measure when ``step % every == 0``. ``num_classes``: the head's number of classes, checked
    against ``head_weight`` (default: its rows). ``label``: stored in every record (e.g. a run name;
    default: ``step N``, the record's own step).
    ``append``: keep the records already in ``path`` (default; a resumed run continues the file) or
    start the file afresh. ``fail_on``, ``baseline``, ``tolerance``: the gates of every record (its
    ``checks`` and ``passed``); given neither rules nor a baseline, those of ``[tool.nc-audit]`` in the
    nearest pyproject.toml apply, announced once on stderr (:mod:`nc_audit.measurement.monitor_gates`).

    A record is measured like ``measure_arrays`` measures the batch as its one split ``batch``: the same
    streaming passes, metrics, conventions and notes (:mod:`nc_audit.measurement.pipeline`), on the
    features' device, plus ``accuracy`` and the extra scalars among its metrics.
    """

    def __init__(
        self,
        path: Path | str,
        every: int = 1,
        num_classes: int | None = None,
        label: str | None = None,
        *,
        append: bool = True,
        fail_on: Iterable[str] | str | None = None,
        baseline: Path | str | None = None,
        tolerance: float | Mapping[str, float] | None = None,
    ) -> None:
        self.check_every(every)
        self.gates = MonitorGates.resolve(fail_on, baseline, tolerance)
        self.path = Path(path)
        self.every = every
        self.num_classes = num_classes
        self.label = label
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not append:
                self.path.write_bytes(b"")
            _drop_truncated_tail(self.path)
        except OSError as error:
            raise InputError(f"{self.path}: cannot write ({error.strerror or error})") from None
        self.gates.announce()

    @staticmethod
    def check_every(every: Any) -> None:
        """InputError unless ``every`` is a positive integer."""
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InputError(f"Monitor: every={every!r} must be a positive integer")

    def should_log(self, step: int) -> bool:
        """Whether ``log(step, ...)`` measures: ``step % every == 0``."""
        return step % self.every == 0

    def log(
        self,
        step: int,
        features: torch.Tensor,
        labels: torch.Tensor,
        head_weight: torch.Tensor,
        head_bias: torch.Tensor | None = None,
        **extra_scalars: Any,
    ) -> dict[str, Any] | None:
        """Measure and append one record when ``step % every == 0``; return it, else None.

        features (n, d), labels (n,), head_weight (C, d), head_bias (C,): detached, measured in float64.
        ``extra_scalars`` (loss=..., lr=...) are stored beside the metrics as plain numbers.
        """
        if isinstance(step, bool) or not isinstance(step, int):
            raise InputError(f"Monitor.log: step={step!r} must be an integer")
        if not self.should_log(step):
            return None
        record = self.measure(step, features, labels, head_weight, head_bias, **extra_scalars)
        self.append(record)
        return record

    def append(self, record: dict[str, Any]) -> None:
        """Append a record made by :meth:`measure` (one write, flushed and fsynced)."""
        append_line(self.path, record)

    def measure(
        self,
        step: int,
        features: torch.Tensor,
        labels: torch.Tensor,
        head_weight: torch.Tensor,
        head_bias: torch.Tensor | None = None,
        **extra_scalars: Any,
    ) -> dict[str, Any]:
        """The record ``log`` would write for this step, without writing it."""
        W = head_weight.detach()  # (C, d)
        H = features.detach()  # (n, d)
        y = labels.detach().long()  # (n,)
        self._check_shapes(H, y, W, head_bias)
        scalars = {name: _scalar(name, value) for name, value in extra_scalars.items()}
        bias = None if head_bias is None else head_bias.detach().to("cpu", torch.float64)  # (C,)
        head = Head(MONITOR_HEAD, W.to("cpu", torch.float64), bias)
        options = MeasureOptions(device=str(H.device), split=BATCH)
        report = measure_memory(
            "Monitor.log", {BATCH: MemoryRows.of_tensors(H, y)}, head, options, NO_FILE, step=step,
            label=self.label if self.label is not None else f"step {step}",
        )  # fmt: skip
        metrics = dict(report.metrics)
        metrics["accuracy"] = json_number(report.details.get("accuracy"))  # a monitor record's own, as before
        for name, value in scalars.items():
            if name in metrics:
                raise InputError(
                    f"Monitor.log: extra scalar {name!r} would overwrite the metric of that name"
                )
            metrics[name] = value
        return self.gates.gate(report.changed(metrics=metrics)).to_dict()

    def _check_shapes(
        self, H: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None
    ) -> None:
        if (
            H.dim() != 2
            or y.dim() != 1
            or H.shape[0] != y.shape[0]
            or W.dim() != 2
            or W.shape[1] != H.shape[1]
        ):
            raise InputError(
                f"Monitor.log: expected features (n, d), labels (n,), head_weight (C, d); got "
                f"{tuple(H.shape)}, {tuple(y.shape)}, {tuple(W.shape)}"
            )
        C = W.shape[0]
        if self.num_classes is not None and self.num_classes != C:
            raise InputError(f"Monitor: num_classes={self.num_classes} but head_weight has {C} rows")
        if b is not None and tuple(b.shape) != (C,):
            raise InputError(f"Monitor.log: head_bias has shape {tuple(b.shape)}, expected ({C},)")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= C):
            raise InputError(
                f"Monitor.log: labels must lie in 0..{C - 1}, found {int(y.min())}..{int(y.max())}"
            )


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line: a single write of the whole line, then flush and fsync."""
    data = (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        written = os.write(fd, data)
        while written < len(data):  # a regular file takes it in one go; finish a short write anyway
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_truncated_tail(path: Path) -> None:
    """Cut an unterminated last line (a write killed half-way) so the next record starts on its own line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        warnings.warn(
            f"{path}: dropping a truncated last line ({len(data) - keep} bytes) left by an interrupted write",
            TruncatedLineWarning,
            stacklevel=3,
        )
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
