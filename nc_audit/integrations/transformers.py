"""``NCAuditCallback`` for the Hugging Face ``Trainer``: Neural Collapse and matrix information every N steps.

::

    from nc_audit.integrations.transformers import NCAuditCallback

    trainer = Trainer(model=model, args=args, train_dataset=train)
    NCAuditCallback.attach(trainer, "runs/nc.jsonl", every=50)   # or callbacks=[NCAuditCallback(...)]
    trainer.train()                   # then: nc-audit track runs/nc.jsonl --plot nc.png

Every ``every``-th optimizer step (``state.global_step % every == 0``) the features the classifier saw
in that step's training micro-batches (a forward pre-hook on the model's classifier module: ``head=``
names it) and their labels (the ``labels`` keyword the Trainer passes to the model, read by a
``with_kwargs`` pre-hook on the model) are measured in float64 with the head's weights of that forward: one
record appended to the ``.jsonl`` (world process 0), and the metrics logged as ``nc_audit/<metric>``.
Attached with :meth:`NCAuditCallback.attach` (or given ``trainer=``) they go through ``Trainer.log``:
``state.log_history``, every ``report_to`` integration and the console. A callback made without the
trainer cannot reach ``Trainer.log`` (callbacks are not handed the trainer), so it appends the values
to ``state.log_history`` alone.

Each record also holds the learning rate of the step's update (``lr``, or ``lr_0``, ``lr_1``, ... for
parameter groups with different rates, read from the optimizer the Trainer hands its callbacks when the
step begins) and, when the Trainer logs at that step (``logging_steps`` dividing the step), its logged
training ``loss`` and ``learning_rate`` (``on_log``; the record is written once that log arrives);
``nc-audit track`` draws both on panels of their own.
``fail_on``/``baseline``/``tolerance`` gate each record (default: ``[tool.nc-audit]`` of pyproject.toml,
announced once; see :class:`nc_audit.measurement.monitor.Monitor`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nc_audit.core.errors import InputError
from nc_audit.integrations.capture import HeadRecorder, learning_rates, log_values, losses, number
from nc_audit.measurement.monitor import Monitor


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise InputError(
            "NCAuditCallback for the Hugging Face Trainer needs transformers: pip install 'nc-audit[hf]'"
        ) from None
    return transformers


class NCAuditCallback(_transformers().TrainerCallback):  # type: ignore[misc]  # base class imported when used (optional extra): Any
    """Records and logs the metrics every ``every`` optimizer steps (see the module docstring)."""

    def __init__(
        self,
        path: Path | str,
        every: int = 50,
        *,
        head: str | None = None,
        label: str | None = None,
        trainer: Any = None,
        append: bool = True,
        fail_on: Iterable[str] | str | None = None,
        baseline: Path | str | None = None,
        tolerance: float | Mapping[str, float] | None = None,
    ) -> None:
        self.path, self.every, self.head, self.label = Path(path), every, head, label
        self.trainer, self.append = trainer, append
        self.fail_on, self.baseline, self.tolerance = fail_on, baseline, tolerance
        self._pending: dict[str, Any] | None = None  # a record waiting for the Trainer's log of its step
        self._rates: dict[str, float] = {}
        self.monitor: Monitor | None = None
        self.recorder: HeadRecorder | None = None
        self._labels: list[Tensor] = []
        self._label_hook: Any = None
        Monitor.check_every(every)

    @classmethod
    def attach(cls, trainer: Any, path: Path | str, every: int = 50, **options: Any) -> NCAuditCallback:
        """A callback that logs through ``trainer.log``, added to ``trainer``."""
        callback = cls(path, every, trainer=trainer, **options)
        trainer.add_callback(callback)
        return callback

    def _record_labels(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        labels = kwargs.get("labels")
        if module.training and isinstance(labels, Tensor):
            self._labels.append(labels.detach())

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: nn.Module | None = None, **kwargs: Any
    ) -> None:
        if model is None:
            raise InputError("NCAuditCallback: the Trainer passed no model to on_train_begin")
        if self.head is None:
            from nc_audit.models.huggingface import head_name

            self.head = head_name(model)
        self.recorder = HeadRecorder(model, self.head)
        self._label_hook = model.register_forward_pre_hook(self._record_labels, with_kwargs=True)
        if state.is_world_process_zero:
            self.monitor = Monitor(self.path, self.every, label=self.label, append=self.append,
                fail_on=self.fail_on, baseline=self.baseline, tolerance=self.tolerance,
            )  # fmt: skip

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._flush()
        self._rates = learning_rates([kwargs.get("optimizer")])  # the rates this step's update uses
        if self.recorder is not None:
            self.recorder.clear()
        self._labels.clear()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        step = int(state.global_step)
        if self.recorder is None or self.monitor is None or step % self.every:
            return None
        features, weight = self.recorder.features(), self.recorder.weight
        if features is None or weight is None or not self._labels:
            return None
        labels = torch.cat(self._labels).to(features.device)
        rates = self._rates
        record = self.monitor.measure(step, features, labels, weight, self.recorder.bias, **rates)
        values = log_values(record, exclude=rates)
        if control.should_log:  # the Trainer logs this step's loss next (on_log): the record waits for it
            self._pending = record
        else:
            self.monitor.append(record)
        if self.trainer is not None:
            pending = control.should_log  # Trainer.log's on_log would reset the step's own logging
            self.trainer.log(values)
            control.should_log = pending
        else:
            state.log_history.append({**values, "step": step})
        return control

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        """The Trainer's own log of the pending record's step: its losses join the record, then it is written."""
        logs = logs or {}
        if self._pending is None or int(state.global_step) != self._pending["step"] or "loss" not in logs:
            return  # not the step's training log (ours, an evaluation's, the run's summary)
        found = losses(logs)
        rate = number(logs.get("learning_rate"))
        if rate is not None and "lr" in self._pending["metrics"]:
            found["lr"] = rate  # the Trainer's own log of it
        self._pending["metrics"].update(found)
        self._flush()

    def _flush(self) -> None:
        """Write the pending record (with the losses its step's log brought, if any)."""
        if self._pending is not None and self.monitor is not None:
            self.monitor.append(self._pending)
        self._pending = None

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._flush()
        if self.recorder is not None:
            self.recorder.remove()
            self.recorder = None
        if self._label_hook is not None:
            self._label_hook.remove()
            self._label_hook = None
