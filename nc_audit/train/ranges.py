"""The allowed range of every numeric training setting, declared once with its one message.

``FinetuneConfig`` checks its settings with these on construction; the library's losses
(:func:`nc_audit.train.losses.total_loss`) and the studies' recipes check the same settings with the
same objects, so a setting has one range and one message wherever it enters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nc_audit.core.errors import InputError


@dataclass(frozen=True)
class Range:
    """``low <= value <= high`` (NaN fails), ``low < value`` when ``open_low``, finite when ``finite``;
    ``integer``: an int (not a bool). ``flag`` names the setting in messages, as the user sets it."""

    flag: str
    low: float
    high: float = math.inf
    open_low: bool = False
    finite: bool = False
    integer: bool = False

    def check(self, value: float | None, flag: str | None = None) -> None:
        """Raise InputError (one line, naming ``flag`` or the setting's own flag) unless ``value`` lies
        in the range; None (an optional setting not given) always passes."""
        if value is None:
            return
        if self.integer and (isinstance(value, bool) or not isinstance(value, int)):
            raise InputError(f"{flag or self.flag} must {self.requirement()}, got {value!r}")
        above = value > self.low if self.open_low else value >= self.low
        inside = above and value <= self.high and (math.isfinite(value) or not self.finite)
        if not inside:  # NaN fails every comparison
            raise InputError(f"{flag or self.flag} must {self.requirement()}, got {value}")

    def requirement(self) -> str:
        """How the message states the range: 'be a positive integer', 'lie in [0, 1]', 'lie in [0, ∞)'."""
        if self.integer:
            return "be a positive integer" if self.low >= 1 else "be a non-negative integer"
        if self.open_low and self.low == 0 and not math.isfinite(self.high):
            return "be a positive number"
        opening = "(" if self.open_low else "["
        high = f"{self.high:g}]" if math.isfinite(self.high) else "∞)"
        return f"lie in {opening}{self.low:g}, {high}"


CMA_WEIGHT = Range("--cma-weight", 0.0, 1.0)
MIR_WEIGHT = Range("--mir-weight", 0.0)
HDR_WEIGHT = Range("--hdr-weight", 0.0)
LABEL_SMOOTHING = Range("--label-smoothing", 0.0, 1.0)
LR = Range("--lr", 0.0, open_low=True, finite=True)
EPOCHS = Range("--epochs", 1, integer=True)
BATCH_SIZE = Range("--batch-size", 1, integer=True)
LOSS_SHARDS = Range("--loss-shards", 1, integer=True)
TRAIN_SAMPLES_PER_CLASS = Range("--train-samples-per-class", 1, integer=True)
ADAPTER_HIDDEN = Range("--adapter-hidden", 1, integer=True)
SEED = Range("--seed", 0, integer=True)

#: FinetuneConfig field → its range (every numeric setting has one; tests/train/test_config_ranges.py).
FINETUNE_RANGES: dict[str, Range] = {
    "cma_weight": CMA_WEIGHT,
    "mir_weight": MIR_WEIGHT,
    "hdr_weight": HDR_WEIGHT,
    "label_smoothing": LABEL_SMOOTHING,
    "lr": LR,
    "epochs": EPOCHS,
    "batch_size": BATCH_SIZE,
    "loss_shards": LOSS_SHARDS,
    "train_samples_per_class": TRAIN_SAMPLES_PER_CLASS,
    "adapter_hidden": ADAPTER_HIDDEN,
    "seed": SEED,
}
