"""The grokking demo: train a model on a+b mod p, checkpoint it, then let nc-audit track the checkpoints.

Models (``MODELS``): ``modmlp`` (an embedding MLP; p = 97 by default) and ``transformer`` (the one-layer
transformer of Nanda et al. 2023, nc_audit.models.transformer; p = 59, train fraction 0.4, d_model 64,
14,000 steps by default: chosen so it groks in minutes on 2 CPU cores — see the README). ``REFERENCE``
holds Nanda et al.'s configuration (p = 113, 30 % train, d_model 128, weight decay 1), reachable with
``p``, ``train_fraction``, ``shape`` (d_model, heads) and ``weight_decay``. Training (Power et al.
2022, Nanda et al. 2023): full batch, AdamW (lr 1e-3, weight decay 1.0, betas (0.9, 0.98)), constant lr;
a self-describing checkpoint DIR/step_XXXXX.pt every ``save_every`` steps (and at step 0 and the last
step), with the training loop's train/test accuracy and loss in each checkpoint's meta.

Resuming: at every save DIR/resume.state (atomically) holds the weights, the optimizer state, the step
and the history; ``resume=True`` continues from it (training is full batch and draws no random
numbers, so the result is bit-identical to an uninterrupted run on the same machine and threads), and
may raise ``steps``; every other setting must be the same.

Measurement: ``measure_trajectory`` on the train split and on the test split (Papyan's protocol: the
test records take the class means from train, so their class-level metrics are the train ones and
only accuracy and NC4 are held-out numbers). The test records also carry, under
``details.own_class_means``, every class-level metric computed with the TEST features' own class
means — the held-out MIR/HDR the plot shows. Events and statistics come from the measured records:

- event step: the first checkpoint whose measured accuracy is ≥ 0.99 (train, resp. test);
- window change of a metric m around an event at checkpoint i: its total variation
  Σ_j |m(s_{j+1}) − m(s_j)| over checkpoints i−k … i+k, k = 2 (clipped at the ends), compared between
  the two events and with its median over every checkpoint of the run.
"""

from __future__ import annotations

import itertools
import json
import math
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from nc_audit.core.errors import InputError
from nc_audit.core.formats import GROKKING_SCHEMA
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.core.version import __version__
from nc_audit.experiments.grokking_train import OPTIMIZER, train
from nc_audit.io.data.datasets import load_dataset
from nc_audit.io.guards.atomic import atomic_write_text
from nc_audit.report.model import Report, finite_or_none, trajectory_dict

#: Per model: its config and the run's defaults. The steps leave room after the test accuracy reaches 0.99
#: (the README's grokking section gives the measured steps).
MODELS: dict[str, dict[str, Any]] = {
    "modmlp": {"config": {"embed_dim": 128, "hidden": 256}, "p": 97, "train_fraction": 0.4, "steps": 6000,
               "save_every": 100},
    "transformer": {"config": {"d_model": 64, "heads": 4, "d_mlp": 256}, "p": 59, "train_fraction": 0.4,
                    "steps": 14000, "save_every": 200},
}  # fmt: skip
THRESHOLD = 0.99
WINDOW = 2  # checkpoints either side of an event
TRACKED = ("mir", "hdr")


@dataclass(frozen=True)
class GrokkingResult:
    """Paths written, the measured events and window changes, and how long each phase took.

    ``document`` is what DIR/trajectory.json holds (schema ``nc-audit-grokking/1``); the CLI renders
    it as DIR/grokking.png and DIR/SUMMARY.md.
    """

    out: Path
    checkpoints: list[Path]
    trajectory_path: Path
    document: dict[str, Any]

    @property
    def seconds(self) -> dict[str, float]:
        seconds: dict[str, float] = self.document["seconds"]
        return seconds

    @property
    def events(self) -> dict[str, Any]:
        found: dict[str, Any] = self.document["events"]
        return found


def measure_splits(paths: list[Path], spec: str, tracker: Tracker) -> tuple[list[Report], list[Report]]:
    """Train and test reports of every checkpoint via measure_trajectory (features in a temporary cache)."""
    from nc_audit.measurement.options import MeasureOptions
    from nc_audit.measurement.trajectory import measure_trajectory

    with tempfile.TemporaryDirectory(prefix="nc-audit-grokking-") as cache:
        options = MeasureOptions(data=spec, cache_dir=Path(cache), device="cpu")
        train_reports = measure_trajectory(paths, replace(options, split="train"), tracker)
        test_reports = measure_trajectory(paths, replace(options, split="test"), tracker)
        with tracker.stage("test class means", len(test_reports), unit="checkpoints") as advance:
            own = []
            for report in test_reports:
                own.append(own_class_means(Path(report.details["feature_cache"]["path"])))
                advance(1)
    # The cache is gone: the copies no longer point into it (reports are frozen; nothing is mutated).
    train = [_uncached(report) for report in train_reports]
    test = [_uncached(report, own_class_means=means) for report, means in zip(test_reports, own, strict=True)]
    return train, test


def _uncached(report: Report, **details: Any) -> Report:
    """A copy of ``report`` without its temporary feature cache (path and details), plus ``details``."""
    kept = {key: value for key, value in report.details.items() if key != "feature_cache"}
    return report.changed(features={**report.features, "path": None}, details={**kept, **details})


def own_class_means(dump: Path) -> dict[str, float | None]:
    """Every class-level metric of the dump's test split with the test features' own class means."""
    from nc_audit.io.dumps.reader import iter_chunks, read_head, resolve_split
    from nc_audit.measurement.compute import metrics_from_arrays

    chunks = list(iter_chunks(resolve_split(dump, "test")))
    H = torch.cat([features for features, _ in chunks])  # (N_test, d)
    y = torch.cat([labels for _, labels in chunks])  # (N_test,)
    head = read_head(dump)
    if head is None:
        raise InputError(f"{dump}: the feature cache holds no head")
    metrics, _ = metrics_from_arrays(H, y, head)
    return {key: finite_or_none(value) for key, value in metrics.items()}


def first_step(steps: list[int], values: list[float | None], threshold: float = THRESHOLD) -> int | None:
    """The first step whose value is ≥ threshold, or None."""
    return next((s for s, v in zip(steps, values, strict=True) if v is not None and v >= threshold), None)


def window_change(steps: list[int], values: list[float | None], event: int | None) -> dict[str, Any] | None:
    """Σ_j |m(s_{j+1}) − m(s_j)| over checkpoints i−k … i+k around the event at i (k = WINDOW, clipped).

    The total variation, not the net change: a metric that peaks at the event moved a lot even if it
    ends where it started.
    """
    if event is None:
        return None
    i = steps.index(event)
    lo, hi = max(i - WINDOW, 0), min(i + WINDOW, len(steps) - 1)
    window = values[lo : hi + 1]
    known = [value for value in window if value is not None]
    change = None
    if len(known) == len(window):
        change = sum(abs(b - a) for a, b in itertools.pairwise(known))
    return {"from_step": steps[lo], "to_step": steps[hi], "change": change}


def series(train_reports: list[Report], test_reports: list[Report]) -> dict[str, list[Any]]:
    """Per-checkpoint series from the measured reports (accuracy from the classifier's decisions)."""
    data: dict[str, list[Any]] = {
        "train accuracy": [r.details["accuracy"] for r in train_reports],
        "test accuracy": [r.details["accuracy"] for r in test_reports],
    }
    for key in TRACKED:
        data[f"{key} (train features)"] = [finite_or_none(r.metrics.get(key)) for r in train_reports]
        data[f"{key} (test features)"] = [r.details["own_class_means"].get(key) for r in test_reports]
    return data


def events(steps: list[int], values: dict[str, list[Any]]) -> dict[str, Any]:
    """Event steps and the window change of every tracked series around each event."""
    train_event = first_step(steps, values["train accuracy"])
    test_event = first_step(steps, values["test accuracy"])
    changes = {}
    for name, column in values.items():
        if "accuracy" in name:
            continue
        around_train = window_change(steps, column, train_event)
        around_test = window_change(steps, column, test_event)
        larger = None
        if around_train and around_test and None not in (around_train["change"], around_test["change"]):
            larger = "test" if around_test["change"] > around_train["change"] else "train"
        typical = [window_change(steps, column, step) for step in steps]  # never None: step is given
        known = sorted(c["change"] for c in typical if c is not None and c["change"] is not None)
        changes[name] = {
            "around_train_event": around_train,
            "around_test_event": around_test,
            "larger_around": larger,
            "median_over_run": known[len(known) // 2] if known else None,
        }
    best = max(range(len(steps)), key=lambda i: values["test accuracy"][i])
    return {"threshold": THRESHOLD, "window_checkpoints": WINDOW, "train_accuracy_step": train_event,
            "test_accuracy_step": test_event, "best_test_accuracy": {"step": steps[best],
            "accuracy": values["test accuracy"][best]}, "changes": changes}  # fmt: skip


#: The configuration of Nanda et al. (2023): ``demo grokking --model transformer`` with these values.
REFERENCE: dict[str, Any] = {"p": 113, "train_fraction": 0.3, "d_model": 128, "heads": 4, "weight_decay": 1.0}


@dataclass(frozen=True)
class ModelShape:
    """Transformer sizes given on the command line (None: the model's default). d_mlp follows d_model
    (4·d_model, as in Nanda et al.) unless the default d_model is kept."""

    d_model: int | None = None
    heads: int | None = None

    def config(self, model: str) -> dict[str, Any]:
        config = dict(MODELS[model]["config"])
        if self.d_model is None and self.heads is None:
            return config
        if model != "transformer":
            raise InputError("--d-model and --heads apply to --model transformer only")
        if self.d_model is not None:
            config["d_model"], config["d_mlp"] = self.d_model, 4 * self.d_model
        if self.heads is not None:
            config["heads"] = self.heads
        if config["d_model"] < 1 or config["heads"] < 1 or config["d_model"] % config["heads"]:
            raise InputError(
                f"--d-model {config['d_model']} must be a positive multiple of --heads {config['heads']}"
            )
        return config


def run_config(
    model: str = "modmlp",
    p: int | None = None,
    train_fraction: float | None = None,
    steps: int | None = None,
    save_every: int | None = None,
    seed: int = 0,
    shape: ModelShape | None = None,
    weight_decay: float | None = None,
) -> dict[str, Any]:
    """The run's settings: the model's defaults (``MODELS``, ``OPTIMIZER``) for every value not given."""
    if model not in MODELS:
        raise InputError(f"--model {model!r}: the grokking demo trains one of {', '.join(MODELS)}")
    defaults = MODELS[model]
    optimizer = {**OPTIMIZER, "betas": list(OPTIMIZER["betas"])}
    if weight_decay is not None:
        if not (math.isfinite(weight_decay) and weight_decay >= 0.0):
            raise InputError(f"--weight-decay must be a finite number >= 0, got {weight_decay}")
        optimizer["weight_decay"] = weight_decay
    config: dict[str, Any] = {
        "p": defaults["p"] if p is None else p,
        "train_fraction": defaults["train_fraction"] if train_fraction is None else train_fraction,
        "steps": defaults["steps"] if steps is None else steps,
        "save_every": defaults["save_every"] if save_every is None else save_every,
        "seed": seed,
        "model": {"name": model, "config": (shape or ModelShape()).config(model)},
        "optimizer": optimizer,
        "batch": "full",
    }
    if config["steps"] < 1 or config["save_every"] < 1:
        raise InputError(
            f"--steps {config['steps']} and --save-every {config['save_every']} must be positive integers"
        )
    return config


def run_grokking(
    out: Path | str,
    *,
    model: str = "modmlp",
    p: int | None = None,
    train_fraction: float | None = None,
    steps: int | None = None,
    save_every: int | None = None,
    seed: int = 0,
    resume: bool = False,
    tracker: Tracker | None = None,
    shape: ModelShape | None = None,
    weight_decay: float | None = None,
) -> GrokkingResult:
    """Train, checkpoint and measure; write DIR/step_XXXXX.pt and DIR/trajectory.json (see the module doc).
    Values left None take the model's defaults (``MODELS``, ``OPTIMIZER``)."""
    config = run_config(model, p, train_fraction, steps, save_every, seed, shape, weight_decay)
    tracker = tracker or SilentTracker()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{out}: cannot create the output folder ({error.strerror})") from None
    spec = load_dataset(
        f"modadd:p={config['p']},train_fraction={config['train_fraction']},seed={seed}", "train"
    ).spec
    paths, history, train_seconds = train(out, spec, config, tracker, resume)
    trained = time.perf_counter()
    train_reports, test_reports = measure_splits(paths, spec, tracker)
    measured = time.perf_counter()
    steps_saved = [r.step for r in train_reports if r.step is not None]
    if len(steps_saved) != len(train_reports):  # every checkpoint train() writes records its step
        raise RuntimeError(f"{out}: a checkpoint of the run records no step")
    values = series(train_reports, test_reports)
    document = {
        "schema": GROKKING_SCHEMA,
        "nc_audit_version": __version__,
        "config": {"dataset": spec, **config, "model": {"name": model, **config["model"]["config"]}},
        "history": history,
        "steps": steps_saved,
        "series": values,
        "events": events(steps_saved, values),
        "train": trajectory_dict(train_reports),
        "test": trajectory_dict(test_reports),
    }
    document["seconds"] = {
        "train": train_seconds,  # summed over resumed invocations
        "measure": measured - trained,
        "total": train_seconds + measured - trained,
    }
    atomic_write_text(out / "trajectory.json", json.dumps(document, indent=1, allow_nan=False) + "\n")
    return GrokkingResult(out, paths, out / "trajectory.json", document)
