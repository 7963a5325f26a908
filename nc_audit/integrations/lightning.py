"""``NCAuditCallback`` for PyTorch Lightning: Neural Collapse and matrix information every N steps.

::

    from nc_audit.integrations.lightning import NCAuditCallback

    trainer = Trainer(callbacks=[NCAuditCallback("runs/nc.jsonl", every=50)])
    trainer.fit(model, loader)        # then: nc-audit track runs/nc.jsonl --plot nc.png

Every ``every``-th optimizer step (``trainer.global_step % every == 0``) the features the head saw in
that step's training batch (a forward pre-hook on the head: ``head=`` names it, default detected as by
``nc-audit extract``) and the batch's labels (the second element of a tuple batch, or ``labels`` /
``label`` / ``y`` / ``targets`` of a dict batch; ``labels_from=`` a function of the batch otherwise) are
measured in float64 with the head's weights of that forward: one record appended to the ``.jsonl`` (rank 0)
and its metrics logged as ``nc_audit/<metric>`` at that step to every logger the Trainer has
(``logger.log_metrics``: TensorBoard, CSV, W&B, ...). The numbers describe one batch; the batch must hold at least two classes.

Each record also holds the Trainer's own training loss and learning rates at that step: every value
logged with ``self.log`` whose name holds ``loss`` (``trainer.callback_metrics``: ``train_loss``, ...),
or else ``loss``, what ``training_step`` returned; and the learning rate of the step's update (``lr``,
or ``lr_0``, ``lr_1``, ... for parameter groups with different rates) from ``trainer.optimizers`` when the
batch starts, as Lightning's ``LearningRateMonitor`` reads it; ``nc-audit track`` draws them on panels of
their own.
``fail_on``/``baseline``/``tolerance`` gate each record (default: ``[tool.nc-audit]`` of pyproject.toml,
announced once; see :class:`nc_audit.measurement.monitor.Monitor`).

Works with ``pytorch_lightning`` (``pip install 'nc-audit[lightning]'``) or, failing that, the
``lightning`` package's ``lightning.pytorch``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from nc_audit.core.errors import InputError
from nc_audit.integrations.capture import HeadRecorder, learning_rates, log_values, losses, number
from nc_audit.measurement.modules import split_batch
from nc_audit.measurement.monitor import Monitor


def _lightning() -> Any:
    """``pytorch_lightning``, else ``lightning.pytorch`` (the same API under the ``lightning`` package)."""
    for name in ("pytorch_lightning", "lightning.pytorch"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise InputError(
        "NCAuditCallback for Lightning needs pytorch-lightning: pip install 'nc-audit[lightning]'"
    )


class NCAuditCallback(_lightning().Callback):  # type: ignore[misc]  # base class imported when used (optional extra): Any
    """Records and logs the metrics every ``every`` optimizer steps (see the module docstring)."""

    def __init__(
        self,
        path: Path | str,
        every: int = 50,
        *,
        head: str | None = None,
        label: str | None = None,
        labels_from: Callable[[Any], Any] | None = None,
        log: bool = True,
        append: bool = True,
        fail_on: Iterable[str] | str | None = None,
        baseline: Path | str | None = None,
        tolerance: float | Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.path, self.every, self.head, self.label = Path(path), every, head, label
        self.labels_from, self.log, self.append = labels_from, log, append
        self.fail_on, self.baseline, self.tolerance = fail_on, baseline, tolerance
        self.monitor: Monitor | None = None
        self.recorder: HeadRecorder | None = None
        self._last_step: int | None = None
        self._rates: dict[str, float] = {}
        Monitor.check_every(every)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.recorder = HeadRecorder(pl_module, self.head)
        if trainer.is_global_zero:
            self.monitor = Monitor(self.path, self.every, label=self.label, append=self.append,
                fail_on=self.fail_on, baseline=self.baseline, tolerance=self.tolerance,
            )  # fmt: skip

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.recorder is not None:
            self.recorder.clear()
        self._rates = learning_rates(getattr(trainer, "optimizers", None) or ())  # this step's update

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = int(trainer.global_step)
        if self.recorder is None or step % self.every or step == self._last_step:
            return
        features, weight = self.recorder.features(), self.recorder.weight
        if features is None or weight is None:
            return
        self._last_step = step
        labels = self.labels_from(batch) if self.labels_from is not None else split_batch(batch)[1]
        if labels is None:
            raise InputError("NCAuditCallback: the batch carries no labels; pass labels_from=batch -> labels")
        if self.monitor is not None:
            scalars = {**trainer_losses(trainer, outputs), **self._rates}
            record = self.monitor.log(
                step,
                features,
                labels.to(features.device),
                weight,
                self.recorder.bias,
                **scalars,
            )
            if record is not None and self.log:
                for logger in trainer.loggers:  # one row per measurement, at the measured step
                    logger.log_metrics(log_values(record, exclude=scalars), step=step)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.recorder is not None:
            self.recorder.remove()
            self.recorder = None


def trainer_losses(trainer: Any, outputs: Any) -> dict[str, float]:
    """The Trainer's own training losses now: the logged values whose name holds ``loss``
    (``trainer.callback_metrics``), else ``loss``, what ``training_step`` returned."""
    logged = losses(getattr(trainer, "callback_metrics", None) or {})
    if logged:
        return logged
    step_output = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
    own = number(step_output) if isinstance(step_output, (Tensor, int, float)) else None
    return {"loss": own} if own is not None else {}
