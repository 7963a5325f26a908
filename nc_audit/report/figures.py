"""The figures of the other documents: one report (measure), an interpolation, the grokking demo, and a
fine-tuning run. Each function takes the document's plain-data form and returns a matplotlib Figure;
:func:`nc_audit.report.plots.save_figure` writes it. Nothing here computes a metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nc_audit.core.formats import LOSS_KEYS
from nc_audit.report.figure_text import fit_text
from nc_audit.report.formats.view import raw_text
from nc_audit.report.model import Report
from nc_audit.report.plots import TARGET_LABEL, Panel, number, panel_figure

#: Characters of a checkpoint or data name in a figure title (the rest is cut in the middle: fit_text).
NAME_CHARS = 40


def report_figure(report: Report) -> Figure:
    """One report: each metric's distance to its NC target, |value − target|, as bars on a log axis
    (a distance of 0 — at Neural Collapse — is written beside its bar's place)."""
    rows = []
    for key, value in report.metrics.items():
        distance = abs(number(value) - number(report.targets.get(key)))
        if math.isfinite(distance):
            rows.append((raw_text(key), distance))
    figure = Figure(figsize=(7.0, 0.32 * max(len(rows), 3) + 1.2), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    names = [key for key, _ in rows][::-1]
    distances = [distance for _, distance in rows][::-1]
    positive = [d for d in distances if d > 0]
    floor = min(positive) / 10 if positive else 1e-12
    ax.barh(names, [max(d, floor) for d in distances], color="tab:blue", label="|value − NC target|")
    for position, distance in enumerate(distances):
        if distance == 0:
            ax.text(floor, position, " 0 (at NC)", va="center", fontsize="small")
    if positive:
        ax.set_xscale("log")
    ax.set_xlabel("distance to the NC target" + (" (log scale)" if positive else ""))
    ax.grid(True, axis="x", alpha=0.3)
    checkpoint = report.checkpoint.get("path") or report.label or "report"
    name = fit_text(Path(raw_text(checkpoint)).name, NAME_CHARS)
    ax.set_title(f"distance to Neural Collapse: {name}", fontsize="medium")
    return figure


def interpolation_figure(document: Mapping[str, Any]) -> Figure:
    """θ(α) between two checkpoints: accuracy, cross-entropy (log), NC1 (log), NC4, MIR, HDR against α."""
    records: Sequence[Mapping[str, Any]] = document.get("records") or []
    targets = document.get("targets") or {}
    alphas = [float(record["alpha"]) for record in records]

    def metric(key: str) -> list[Any]:
        return [(record.get("metrics") or {}).get(key) for record in records]

    def target(*keys: str) -> dict[str, float]:
        values = {number(targets.get(key)) for key in keys} - {math.nan}
        return {TARGET_LABEL: values.pop()} if len(values) == 1 else {}

    panels = [
        Panel("accuracy", {"accuracy": [record.get("accuracy") for record in records]}),
        Panel("cross-entropy", {"loss": [record.get("loss") for record in records]}, log=True),
        Panel(
            "NC1", {"nc1": metric("nc1"), "nc1_cdnv": metric("nc1_cdnv")}, target("nc1", "nc1_cdnv"), log=True
        ),
        Panel("NC4", {"nc4": metric("nc4")}, target("nc4")),
        Panel("MIR", {"mir": metric("mir")}, target("mir")),
        Panel("HDR", {"hdr": metric("hdr")}, target("hdr")),
    ]
    a, b = (
        fit_text(Path(str((document.get(end) or {}).get("path", end))).name, NAME_CHARS) for end in ("a", "b")
    )
    data, split = fit_text(str(document.get("data")), NAME_CHARS), fit_text(str(document.get("split")), 16)
    title = f"linear interpolation {a} → {b} on {data} [{split}]"
    return panel_figure(alphas, panels, xlabel="α", title=title)


def grokking_figure(document: Mapping[str, Any]) -> Figure:
    """The grokking demo against step: accuracy, cross-entropy (log), MIR and HDR (train and test
    features; NC targets dashed; the steps where accuracy first reached the threshold dotted)."""
    steps, values, history = document["steps"], document["series"], document["history"]
    targets = document["train"]["records"][0]["targets"]
    events = document["events"]
    marks = [s for s in (events["train_accuracy_step"], events["test_accuracy_step"]) if s is not None]

    def tracked(key: str) -> dict[str, Any]:
        return {name: column for name, column in values.items() if name.startswith(key + " ")}

    def target(key: str) -> dict[str, float]:
        value = number(targets.get(key))
        return {} if math.isnan(value) else {TARGET_LABEL: value}

    panels = [
        Panel("accuracy (measured)", {k: values[k] for k in ("train accuracy", "test accuracy")}),
        Panel(
            "cross-entropy (training loop)",
            {f"{s} loss": [h[f"{s}_loss"] for h in history] for s in ("train", "test")},
            log=True,
            x=[h["step"] for h in history],
        ),
        Panel("MIR", tracked("mir"), target("mir")),
        Panel("HDR", tracked("hdr"), target("hdr")),
    ]
    config = document["config"]
    model = config.get("model", {}).get("name", "modmlp")
    title = (
        f"grokking ({model}): a+b mod {config['p']}, train fraction {config['train_fraction']}; "
        f"dotted: accuracy ≥ {events['threshold']} (train, test)"
    )
    return panel_figure(steps, panels, xlabel="step", title=title, marks=marks)


def finetune_figure(document: Mapping[str, Any]) -> Figure:
    """A fine-tuning run against epoch: losses (log), train/test accuracy, NC1 (log), MIR, HDR."""
    history: Sequence[Mapping[str, Any]] = document.get("history") or []
    epochs = [float(line.get("epoch", index)) for index, line in enumerate(history)]
    keys = list(dict.fromkeys(key for line in history for key in line))

    def column(key: str) -> list[Any]:
        return [line.get(key) for line in history]

    losses = [key for key in keys if key in LOSS_KEYS or key.endswith("_loss")]
    panels = [
        Panel("loss", {key: column(key) for key in losses}, log=True),
        Panel("accuracy", {key: column(key) for key in ("train_accuracy", "test_accuracy") if key in keys}),
        Panel("NC1", {"nc1": column("nc1")}, log=True),
        Panel("MIR", {"mir": column("mir")}),
        Panel("HDR", {"hdr": column("hdr")}),
    ]
    return panel_figure(epochs, panels, xlabel="epoch", title="fine-tuning: every epoch's history line")
