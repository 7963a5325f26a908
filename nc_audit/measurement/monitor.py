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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.errors import InputError
from nc_audit.gating.gate import gate
from nc_audit.gating.rules import parse_rules
from nc_audit.io.checkpoints.load import Head
from nc_audit.measurement.compute import metrics_from_arrays
from nc_audit.measurement.degenerate import degenerate_classes, kept_targets
from nc_audit.measurement.describe import build_notes
from nc_audit.measurement.jsonl import TruncatedLineWarning
from nc_audit.measurement.jsonl import read_trajectory_jsonl as read_trajectory_jsonl  # its home before
from nc_audit.metrics.information import nc_targets
from nc_audit.report.model import Report

MONITOR_HEAD = "monitor"


def monitor_conventions(has_bias: bool) -> dict[str, Any]:
    """The conventions of a monitor record: the batch is both the means split and the decisions split."""
    return {
        "global_mean": "sample-weighted",
        "between_class_cov": "classes weighted equally",
        "nc1": "tr(Sigma_W pinv(Sigma_B))/C, eigenpairs above 1e-10*max, at most C-1",
        "nc3": "squared Frobenius distance of Frobenius-normalised W and centred means",
        "nc4_bias": has_bias,
        "std": "population",
        "gram": "cosine (rows normalised)",
        "entropy": "natural log, eigenvalues of K/n",
        "precision": "float64",
        "means_split": "batch",
        "decisions_split": "batch",
    }


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
    start the file afresh. ``fail_on``: rules (``"nc1<=0.5"``) every record is gated on by the one gate
    (gating/gate.py): its ``checks`` and ``passed``.
    """

    def __init__(
        self,
        path: Path | str,
        every: int = 1,
        num_classes: int | None = None,
        label: str | None = None,
        *,
        append: bool = True,
        fail_on: Sequence[str] = (),
    ) -> None:
        self.check_every(every)
        self.rules = parse_rules([fail_on] if isinstance(fail_on, str) else fail_on)  # a typo fails at once
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
        append_line(self.path, record)
        return record

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
        bias = None if head_bias is None else head_bias.detach().to(torch.float64)  # (C,)
        head = Head(MONITOR_HEAD, W.to(torch.float64), bias)
        metrics, counter = metrics_from_arrays(H, y, head)
        metrics["accuracy"] = counter.accuracy
        for name, value in extra_scalars.items():
            if name in metrics:
                raise InputError(
                    f"Monitor.log: extra scalar {name!r} would overwrite the metric of that name"
                )
            metrics[name] = _scalar(name, value)
        stats = ClassStats.from_batch(H, y.to(H.device), head.num_classes)
        C, d = int(stats.present.sum()), int(H.shape[1])
        report = Report(
            checkpoint={"path": None, "sha256": None, "head": MONITOR_HEAD},
            features={
                "path": None,
                "split": "batch",
                "num_samples": int(H.shape[0]),
                "feature_dim": d,
                "num_classes": C,
            },
            conventions=monitor_conventions(head.bias is not None),
            metrics=metrics,
            targets=kept_targets(nc_targets(C), degenerate_classes(stats, head.weight)),
            notes=build_notes(stats, C, d, head, metrics),
            step=step,
            label=self.label if self.label is not None else f"step {step}",
        )
        return gate(report, self.rules).to_dict()

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
