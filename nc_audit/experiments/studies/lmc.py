"""The instability analysis of Frankle et al. (2020) on the sample recipe, with MIR/HDR along every path.

Per seed s: the parent — the sample trajectory's model (built-in ``mlp`` with BatchNorm) with the sample's
recipe (nc_audit.train.recipe), init and batch order seeded with s, i.e. the λ = 0 run of ``study
regularizer`` — is trained to each spawn epoch k. At k two children are spawned (nc_audit.train.spawn):
copies of the parent's weights, BatchNorm buffers, SGD momentum buffers and cosine schedule at epoch k,
each with a batch-order generator of its own (seeds :func:`child_order_seeds`); both train to the end of
the recipe. The control ``independent`` is two full runs from different inits and batch orders (seeds s
and 20000 + s). The straight path between the two networks of every pair is evaluated by ``interpolate``
(nc_audit.experiments.interpolate: BatchNorm statistics recomputed on the train split at every interior α)
on the train and the test split; the record keeps each split's curve (accuracy, loss, NC1, MIR, HDR per α)
and the summary derives from it the barriers and dips (nc_audit.experiments.studies.barriers), mean ± std
over seeds per k.

Files: DIR/runs/parent-seed_S-epoch_K.pt (run states), DIR/runs/child-seed_S-k_K-order_O.pt and
DIR/runs/independent-seed_S-init_I.pt (the pairs' final weights, self-describing checkpoints). A resumed
study reads finished pairs from DIR/runs.jsonl, and for a pair killed half-way reuses the children and the
parent already on disk (written atomically), so nothing finished is trained again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.experiments.studies.barriers import Curve, barrier, check_curve, dip, value_at
from nc_audit.experiments.studies.lmc_pairs import (
    CURVE_METRICS,
    SEED_BOUND,
    PairTrainer,
    check_no_stale_files,
    setting_name,
)
from nc_audit.experiments.studies.records import RUNS_NAME, OnRecord, Run, plain, run_study, write_results
from nc_audit.experiments.studies.setup import open_mlp_study
from nc_audit.experiments.studies.summary import summarise
from nc_audit.train.recipe import Recipe

KIND = "lmc"


@dataclass(frozen=True)
class LmcStudy:
    """What the study trains: spawn epochs, seeds, the α grid, the data, the MLP's widths and the recipe."""

    spawn_epochs: tuple[int, ...] = (0, 1, 2, 5, 10, 20, 50, 100)
    seeds: tuple[int, ...] = (0, 1, 2)
    independent: bool = True
    steps: int = 11
    data: str = "digits"
    hidden: tuple[int, ...] = (64, 64, 64)
    recipe: Recipe = field(default_factory=Recipe)

    @classmethod
    def quick(cls) -> LmcStudy:
        """A few seconds: k ∈ {0, 2}, one seed, a narrow model, 4 epochs, 5 α values."""
        return cls(spawn_epochs=(0, 2), seeds=(0,), steps=5, hidden=(16, 16), recipe=Recipe(epochs=4))

    def validate(self) -> None:
        self.recipe.validate()
        epochs = self.recipe.epochs
        if not self.spawn_epochs and not self.independent:
            raise InputError("lmc study: need a spawn epoch or the independent pairs")
        if not self.seeds:
            raise InputError("lmc study: need at least one seed")
        if any(not 0 <= k < epochs for k in self.spawn_epochs):
            raise InputError(
                f"--spawn-epochs {','.join(map(str, self.spawn_epochs))}: each must lie in 0..{epochs - 1} "
                f"(children train from epoch k to the recipe's last epoch {epochs})"
            )
        if list(self.spawn_epochs) != sorted(set(self.spawn_epochs)):
            raise InputError("--spawn-epochs: give each epoch once, in increasing order")
        if any(not 0 <= seed < SEED_BOUND for seed in self.seeds):
            raise InputError(f"seeds must lie in 0..{SEED_BOUND - 1}, got {list(self.seeds)}")
        if self.steps < 3 or self.steps % 2 == 0:
            raise InputError(f"--steps {self.steps}: need an odd number ≥ 3 (α = 0.5 on the grid)")

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = plain(asdict(self))
        return settings

    def settings_of_pairs(self) -> list[int | None]:
        """The spawn epoch of every kind of pair, None for the independent one (in table order)."""
        return [*self.spawn_epochs, *([None] if self.independent else [])]


def _point_value(point: Any, name: str, where: str) -> float | None:
    """One value of a point of a path (``error``: 1 − accuracy); None when undefined."""
    if not isinstance(point, Mapping):
        raise InputError(f"{where}: a point of a path must be an object")
    field = "accuracy" if name == "error" else name
    holder = point.get("metrics") if name in CURVE_METRICS else point
    value = holder.get(field) if isinstance(holder, Mapping) else None
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise InputError(f"{where}: {field} must be a number or null, found {str(value)[:40]!r}")
    if value is None:
        return None
    return 1.0 - float(value) if name == "error" else float(value)


def curve(record: Mapping[str, Any], split: str, name: str) -> Curve:
    """The (α, value) curve of ``name`` (loss, error, nc1, mir, hdr) on ``split`` of a pair's record;
    InputError naming the run when the record does not hold a path (a tampered DIR/runs.jsonl)."""
    where = f"lmc run '{str(record.get('key'))[:60]}', {split} path"
    points = record.get(split, {}).get("curve") if isinstance(record.get(split), Mapping) else None
    if not isinstance(points, list):
        raise InputError(f"{where}: no curve")
    result = []
    for point in points:
        alpha = point.get("alpha") if isinstance(point, Mapping) else None
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool):
            raise InputError(f"{where}: a point without a numeric α")
        result.append((float(alpha), _point_value(point, name, where)))
    check_curve(result, where)
    return result


def _mean_end_error(record: Mapping[str, Any]) -> float | None:
    ends = curve(record, "test", "error")
    first, last = ends[0][1], ends[-1][1]
    return None if first is None or last is None else (first + last) / 2.0


#: Summary columns: (name, header, how to read it from a pair's record). docs/METRICS.md defines them.
COLUMNS = (
    ("loss_barrier_train", "loss barrier (train)", lambda r: barrier(curve(r, "train", "loss"))),
    ("loss_barrier_test", "loss barrier (test)", lambda r: barrier(curve(r, "test", "loss"))),
    ("error_barrier_train", "error barrier (train)", lambda r: barrier(curve(r, "train", "error"))),
    ("error_barrier_test", "error barrier (test)", lambda r: barrier(curve(r, "test", "error"))),
    ("mir_dip", "MIR dip", lambda r: dip(curve(r, "train", "mir"))),
    ("hdr_rise", "HDR rise", lambda r: barrier(curve(r, "train", "hdr"))),
    ("nc1_mid", "NC1 at α = 0.5", lambda r: value_at(curve(r, "train", "nc1"), 0.5)),
    ("nc1_ends", "NC1 at the ends", lambda r: _mean_ends(curve(r, "train", "nc1"))),
    ("test_error", "test error (ends)", _mean_end_error),
)


def _mean_ends(points: Curve) -> float | None:
    first, last = points[0][1], points[-1][1]
    return None if first is None or last is None else (first + last) / 2.0


def summary(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per kind of pair (spawn epoch k, then independent): mean ± std over seeds per column."""
    return summarise(list(records), ["setting"], [(name, get) for name, _, get in COLUMNS])


def run_lmc(
    out: Path | str,
    study: LmcStudy | None = None,
    *,
    resume: bool = False,
    tracker: Tracker | None = None,
    on_record: OnRecord | None = None,
) -> dict[str, Any]:
    """Run (or resume) the study in ``out``; returns the results document, also written to
    DIR/results.json (schema ``nc-audit-study-results/1``), each record with its ``load_average``."""
    study = study or LmcStudy()
    study.validate()
    tracker = tracker or SilentTracker()
    out = Path(out)
    if not resume:
        check_no_stale_files(out, study)
    opened = open_mlp_study(out, KIND, study.data, study.hidden, study.settings(), resume)
    pairs = PairTrainer(out, study, opened.train, opened.record)

    def work(seed: int, spawn_epoch: int | None) -> Any:
        def measured(inner: Tracker) -> dict[str, Any]:
            record = pairs.measure(seed, spawn_epoch, inner)
            return {**record, "load_average": os.getloadavg()[0]}

        return measured

    runs = [
        Run(
            f"seed={seed},k={setting_name(k)}",
            f"k={setting_name(k)} seed {seed}",
            work(seed, k),
        )
        for seed in study.seeds
        for k in study.settings_of_pairs()
    ]
    results = run_study(opened.records, runs, tracker, on_record)
    for run, result in zip(runs, results, strict=True):  # a record read back must be the run of its key
        seed, k = run.key.removeprefix("seed=").split(",k=")
        if str(result.get("seed")) != seed or result.get("setting") != k:
            raise InputError(
                f"--resume: {opened.records.out / RUNS_NAME}: run '{run.key}' holds the record of seed "
                f"{str(result.get('seed'))[:20]}, setting {str(result.get('setting'))[:40]!r}"
            )
    return write_results(opened.records, opened.record, opened.train.num_classes, results, summary(results))
