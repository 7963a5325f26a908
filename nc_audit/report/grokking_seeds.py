"""Grokking steps over seeds: one row per `demo grokking` run folder, and mean ± spread of the event steps.

A single run's "test accuracy first ≥ 0.99 at step S" is one draw: the same command with another seed
(another train/test split and initialisation) groks at another step. This renders the runs' own
DIR/trajectory.json files (schema nc-audit-grokking/1) as a Markdown page. Strings from the files are
escaped for Markdown (nc_audit.report.escape).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.core.formats import GROKKING_SCHEMA
from nc_audit.io.guards.files import load_json
from nc_audit.report.escape import markdown_cell, markdown_text


@dataclass(frozen=True)
class GrokkingRun:
    """What one run folder's trajectory.json says about its events and time."""

    folder: str
    seed: int
    train_step: int | None
    test_step: int | None
    best_test_accuracy: float
    steps: int
    train_seconds: float
    setup: str


def _setup(config: Mapping[str, Any]) -> str:
    model = config.get("model", {})
    sizes = ", ".join(f"{key} {value}" for key, value in model.items() if key != "name")
    decay = config.get("optimizer", {}).get("weight_decay", 1.0)
    return (f"{model.get('name', '?')} ({sizes}), p = {config.get('p')}, train fraction "
            f"{config.get('train_fraction')}, weight decay {decay:g}, {config.get('steps')} steps")  # fmt: skip


def read_run(folder: Path) -> GrokkingRun:
    """The run in ``folder`` (its trajectory.json); InputError naming the file when it is not one."""
    path = folder / "trajectory.json"
    document = load_json(path, "grokking trajectory")
    if not isinstance(document, dict) or document.get("schema") != GROKKING_SCHEMA:
        raise InputError(f"{path}: not a grokking trajectory ({GROKKING_SCHEMA})")
    try:
        events, config = document["events"], document["config"]
        return GrokkingRun(
            folder=str(folder),
            seed=int(config["seed"]),
            train_step=events["train_accuracy_step"],
            test_step=events["test_accuracy_step"],
            best_test_accuracy=float(events["best_test_accuracy"]["accuracy"]),
            steps=int(config["steps"]),
            train_seconds=float(document["seconds"]["train"]),
            setup=_setup(config),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: field {error} is missing or malformed") from None


def spread_text(values: Sequence[int]) -> str:
    """``10,267 ± 1,301 (n = 3; range 9,200–11,800)``: mean ± sample standard deviation and the range."""
    if not values:
        return "no run reached it"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:,.0f} ± {std:,.0f} (n = {len(values)}; range {min(values):,}–{max(values):,})"


def seeds_markdown(runs: Sequence[GrokkingRun]) -> str:
    """The page: one row per run, then the event steps as mean ± spread over the runs that reached them."""
    setups = sorted({run.setup for run in runs})
    lines = [
        "# Grokking steps over seeds (`nc-audit demo grokking --model transformer --seed N`)",
        "",
        "Setup: " + "; ".join(markdown_text(setup) for setup in setups) + ". Each seed draws its own "
        "train/test split and initialisation. Event: the first saved checkpoint whose accuracy is ≥ 0.99.",
        "",
        "| seed | train acc ≥ 0.99 at step | test acc ≥ 0.99 at step | best test accuracy | training wall time |",
        "|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        train = "never" if run.train_step is None else f"{run.train_step:,}"
        test = f"never within {run.steps:,}" if run.test_step is None else f"{run.test_step:,}"
        lines.append(f"| {run.seed} | {train} | {markdown_cell(test)} | {run.best_test_accuracy:.4f} | "
                     f"{run.train_seconds:.0f} s |")  # fmt: skip
    test_steps = [run.test_step for run in runs if run.test_step is not None]
    train_steps = [run.train_step for run in runs if run.train_step is not None]
    lines += [
        "",
        f"Test accuracy first ≥ 0.99: {spread_text(test_steps)}.",
        f"Train accuracy first ≥ 0.99: {spread_text(train_steps)}.",
        "",
    ]
    return "\n".join(lines)
