"""Plots of metrics against step (or α, or epoch): one panel per scale, NC targets as dashed lines.

A figure is built from :class:`Panel` objects by :func:`panel_figure`, which returns a matplotlib
``Figure`` (tests read its lines back); :func:`save_figure` writes it as a PNG atomically and
:func:`figure_png` gives the bytes (the HTML report inlines them). Drawing uses the Agg canvas
directly: no pyplot, no display, no global backend switch.

One panel per scale: a metric that moves by 0.01 (MIR near its NC value) gets an axis of its own
instead of sharing one with a metric that moves by 1 (NC1). Panels without a single finite value are
dropped, and the grid holds exactly as many axes as panels.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nc_audit.io.guards.atomic import atomic_write_bytes
from nc_audit.report.figure_text import fit_text
from nc_audit.report.formats.view import raw_text
from nc_audit.report.model import Report, Trajectory, record_label
from nc_audit.report.numbers import as_number

TARGET_LABEL = "NC target"
#: Characters that fit, at most: a panel title (10 pt over a 5-inch panel), a legend entry, a tick label
#: (rotated), and a suptitle per inch of figure width (large, at 100 dpi: about 10 px a character).
PANEL_TITLE_CHARS, LEGEND_CHARS, TICK_CHARS, SUPTITLE_CHARS_PER_INCH = 48, 32, 24, 9


@dataclass
class Panel:
    """One axis: named series against x, dashed NC targets, optionally a log y-axis.

    ``series``: label → values (None/NaN leave a gap); ``targets``: label → value of a dashed line
    (a target that a log axis cannot show, such as 0, is named in the title instead); ``x``: this
    panel's own x positions (default: the figure's).
    """

    title: str
    series: dict[str, Sequence[Any]]
    targets: dict[str, float] = field(default_factory=dict)
    log: bool = False
    ylabel: str = ""
    x: Sequence[float] | None = None

    def finite(self) -> list[float]:
        return [v for values in self.series.values() for v in map(number, values) if math.isfinite(v)]


def number(value: Any) -> float:
    """A value as a float; None, NaN and non-numbers become NaN (a gap in the line)."""
    number = as_number(value)
    return math.nan if number is None else number


def grid_shape(count: int) -> tuple[int, int]:
    """Rows and columns for ``count`` panels: at most 3 columns, as few empty cells as possible."""
    if count <= 3:
        return 1, max(1, count)
    if count == 4:
        return 2, 2
    return math.ceil(count / 3), 3


def _x_scale(x: Sequence[float]) -> tuple[str, float | None]:
    """log for positive steps spanning more than two decades, symlog when a 0 is among them, else linear."""
    positive = [value for value in x if value > 0]
    if len(x) <= 2 or not positive or max(positive) / min(positive) <= 100:
        return "linear", None
    return ("log", None) if len(positive) == len(x) else ("symlog", min(positive))


def _draw(ax: Any, x: Sequence[float], panel: Panel, marks: Sequence[float]) -> None:
    finite = panel.finite()
    use_log = panel.log and bool(finite) and min(finite) > 0
    hidden = []
    for label, values in panel.series.items():
        if len(values) != len(x):
            raise ValueError(f"series {label!r} has {len(values)} values for {len(x)} x positions")
        ax.plot(
            list(x),
            [number(v) for v in values],
            marker="o",
            markersize=3,
            label=fit_text(label, LEGEND_CHARS),
        )
    for label, target in panel.targets.items():
        if not math.isfinite(target) or (use_log and target <= 0):
            hidden.append(f"{label} {target:g}")
            continue
        ax.axhline(target, linestyle="--", color="grey", linewidth=1, label=label)
    for mark in marks:
        ax.axvline(mark, linestyle=":", color="black", linewidth=1)
    if use_log:
        ax.set_yscale("log")
    title = panel.title + (" (log scale)" if use_log else "")
    title += f"; {', '.join(hidden)}" if hidden else ""
    ax.set_title(fit_text(title, PANEL_TITLE_CHARS), fontsize="medium")
    if panel.ylabel:
        ax.set_ylabel(panel.ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def panel_figure(
    x: Sequence[float],
    panels: Sequence[Panel],
    *,
    xlabel: str,
    title: str,
    xticklabels: Sequence[str] | None = None,
    marks: Sequence[float] = (),
) -> Figure:
    """A figure with one axis per panel that has a finite value, in order (see the module doc).

    ``xticklabels`` names the x positions (e.g. checkpoint names when there are no steps); ``marks``
    are dotted vertical lines (events). Raises ValueError when a series does not match its x.
    """
    kept = [panel for panel in panels if panel.finite()]
    rows, cols = grid_shape(len(kept))
    figure = Figure(figsize=(5.0 * cols, 3.6 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    for index, panel in enumerate(kept):
        ax = figure.add_subplot(rows, cols, index + 1)
        px = [float(v) for v in (panel.x if panel.x is not None else x)]
        _draw(ax, px, panel, marks)
        scale, threshold = _x_scale(px) if xticklabels is None else ("linear", None)
        if scale == "symlog":
            ax.set_xscale("symlog", linthresh=threshold)
        elif scale == "log":
            ax.set_xscale("log")
        ax.set_xlabel(xlabel + (f" ({scale} scale)" if scale != "linear" else ""))
        if xticklabels is not None:
            ticks = [fit_text(label, TICK_CHARS) for label in xticklabels]
            ax.set_xticks(px, ticks, rotation=45, ha="right", fontsize="small")
    if not kept:
        ax = figure.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no metric values to plot", ha="center", va="center")
        ax.set_axis_off()
    figure.suptitle(fit_text(title, int(SUPTITLE_CHARS_PER_INCH * figure.get_figwidth())))
    return figure


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; its titles, labels and legends shown as written (no mathtext from input)."""
    from nc_audit.report.figure_text import literal_texts

    literal_texts(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_figure(figure: Figure, path: str | Path) -> None:
    """Write the figure as a PNG, atomically."""
    atomic_write_bytes(path, figure_png(figure))


# --- trajectories ---------------------------------------------------------------------------------------

#: Panels of a trajectory: (title, metric keys, log y when positive, y label). One scale per panel.
TRAJECTORY_PANELS: tuple[tuple[str, tuple[str, ...], bool, str], ...] = (
    ("NC1", ("nc1", "nc1_cdnv"), True, ""),
    ("NC2 equinorm", ("nc2_equinorm_means", "nc2_equinorm_head"), False, "std/mean"),
    (
        "NC2 angles",
        ("nc2_equiangular_means", "nc2_equiangular_head", "nc2_maxangle_means", "nc2_maxangle_head"),
        False,
        "",
    ),
    ("NC3 self-duality", ("nc3",), False, ""),
    ("NC4 classifier ≠ nearest mean", ("nc4",), True, "share"),
    ("matrix entropies", ("h_head", "h_means"), False, "nats"),
    ("MI", ("mi",), False, "nats"),
    ("MIR", ("mir",), False, ""),
    ("HDR", ("hdr",), False, ""),
    ("sample-level entropies", ("h_samples", "h_labels"), False, "nats"),
    ("sample-level MI", ("mi_samples", "mi_samples_onehot"), False, "nats"),
    ("sample-level MIR", ("mir_samples",), False, ""),
    ("sample-level HDR", ("hdr_samples",), False, ""),
)
ACCURACY_KEYS = ("accuracy", "accuracy_train", "accuracy_test", "acc_train", "acc_test")


def _targets(keys: Sequence[str], targets: Mapping[str, Any]) -> dict[str, float]:
    """Dashed lines for the keys' NC targets: one 'NC target' line when they share a value."""
    values = {key: number(targets.get(key)) for key in keys}
    values = {key: value for key, value in values.items() if not math.isnan(value)}
    if len(set(values.values())) == 1:
        return {TARGET_LABEL: next(iter(values.values()))}
    return {f"{TARGET_LABEL} ({key})": value for key, value in values.items()}


def trajectory_panels(records: Sequence[Report]) -> list[Panel]:
    """The panels of a trajectory: the metric families, accuracy, then a monitor's own scalars (a loss
    on a log axis, the learning rate on a log axis of its own, anything else alone). Names are shown as
    their raw text (a PNG is not markup; mathtext is off: figure_text)."""
    series: dict[str, list[Any]] = {}
    targets: dict[str, Any] = {}
    for index, record in enumerate(records):
        values = {raw_text(key): value for key, value in record.metrics.items()}
        for key, name in (("accuracy", "accuracy"), ("ncc_accuracy", "nearest class mean")):
            if key in record.details:
                values.setdefault(name, record.details[key])
        for key, value in values.items():
            series.setdefault(key, [None] * len(records))[index] = value
        targets.update({raw_text(k): v for k, v in record.targets.items() if v is not None})
    panels = []
    used: set[str] = set()
    for title, keys, log, ylabel in TRAJECTORY_PANELS:
        present = [key for key in keys if key in series]
        used.update(keys)
        if present:
            panels.append(
                Panel(title, {k: series[k] for k in present}, _targets(present, targets), log, ylabel)
            )
    accuracy = [key for key in (*ACCURACY_KEYS, "nearest class mean") if key in series]
    used.update(accuracy)
    if accuracy:
        panels.append(Panel("accuracy", {key: series[key] for key in accuracy}, ylabel="share correct"))
    rest = [key for key in series if key not in used]
    losses = [key for key in rest if "loss" in key.lower()]
    if losses:
        panels.append(Panel("loss", {key: series[key] for key in losses}, log=True))
    for key in rest:
        if key in losses:
            continue
        is_lr = key.lower() in ("lr", "learning_rate") or key.lower().startswith("lr_")
        panels.append(Panel("learning rate" if is_lr else key, {key: series[key]}, log=is_lr))
    return panels


def trajectory_figure(trajectory: Trajectory, *, x: str = "step", title: str | None = None) -> Figure:
    """Every metric of a trajectory against its step (``x="step"``) or record index.

    Falls back to the index, labelled by checkpoint, when some record has no step.
    """
    if x not in ("step", "index"):
        raise ValueError(f"x must be 'step' or 'index', got {x!r}")
    records = trajectory.records
    steps = [record.step for record in records]
    use_steps = x == "step" and bool(records) and all(isinstance(s, (int, float)) for s in steps)
    positions = (
        [float(s) for s in steps if s is not None] if use_steps else [float(i) for i in range(len(records))]
    )
    labels = [raw_text(record_label(record, i)) for i, record in enumerate(records)]
    ticks = labels if not use_steps and 0 < len(records) <= 12 else None
    num_classes = next((r.features.get("num_classes") for r in records if r.features), None)
    default_title = f"nc-audit trajectory: {len(records)} checkpoints" + (
        f", C = {raw_text(num_classes)}" if num_classes else ""
    )
    return panel_figure(
        positions,
        trajectory_panels(records),
        xlabel="step" if use_steps else "checkpoint",
        title=title or default_title,
        xticklabels=ticks,
    )


def plot_trajectory(trajectory: Trajectory, path: str | Path, **options: Any) -> None:
    """Write :func:`trajectory_figure` as a PNG, atomically."""
    save_figure(trajectory_figure(trajectory, **options), path)
