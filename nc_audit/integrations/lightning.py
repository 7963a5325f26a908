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

Works with ``pytorch_lightning`` (``pip install 'nc-audit[lightning]'``) or, failing that, the
``lightning`` package's ``lightning.pytorch``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.integrations.capture import HeadRecorder, log_values
from nc_audit.measurement.modules import split_batch
from nc_audit.measurement.monitor import Monitor


def _lightning() -> Any:
    try:
        import pytorch_lightning as pl
    except ImportError:
        try:
            import lightning.pytorch as pl
        except ImportError:
            raise InputError(
                "NCAuditCallback for Lightning needs pytorch-lightning: pip install 'nc-audit[lightning]'"
            ) from None
    return pl


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
    ) -> None:
        super().__init__()
        self.path, self.every, self.head, self.label = Path(path), every, head, label
        self.labels_from, self.log, self.append = labels_from, log, append
        self.monitor: Monitor | None = None
        self.recorder: HeadRecorder | None = None
        self._last_step: int | None = None
        Monitor.check_every(every)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.recorder = HeadRecorder(pl_module, self.head)
        if trainer.is_global_zero:
            self.monitor = Monitor(self.path, self.every, label=self.label, append=self.append)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.recorder is not None:
            self.recorder.clear()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = int(trainer.global_step)
        if self.recorder is None or step % self.every or step == self._last_step:
            return
        features = self.recorder.features()
        if features is None:
            return
        self._last_step = step
        labels = self.labels_from(batch) if self.labels_from is not None else split_batch(batch)[1]
        if labels is None:
            raise InputError("NCAuditCallback: the batch carries no labels; pass labels_from=batch -> labels")
        if self.monitor is not None:
            record = self.monitor.log(
                step, features, labels.to(features.device), self.recorder.weight, self.recorder.bias
            )
            if record is not None and self.log:
                for logger in trainer.loggers:  # one row per measurement, at the measured step
                    logger.log_metrics(log_values(record), step=step)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.recorder is not None:
            self.recorder.remove()
            self.recorder = None
