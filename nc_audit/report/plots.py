"""PNG plots of metrics over checkpoints, one panel per metric family, NC targets as dashed lines.

Draws with matplotlib's Agg canvas directly (no pyplot, no display, no global backend switch) and
writes the PNG atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nc_audit.io.atomic import atomic_write_bytes
from nc_audit.report.numbers import as_number

#: Panels of a trajectory plot: (title, metric keys). Metrics outside every family go to "Other".
FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("NC1: within-class variability", ("nc1", "nc1_cdnv")),
    ("NC2: equinorm", ("nc2_equinorm_means", "nc2_equinorm_head")),
    (
        "NC2: angles",
        ("nc2_equiangular_means", "nc2_equiangular_head", "nc2_maxangle_means", "nc2_maxangle_head"),
    ),
    ("NC3 self-duality / NC4 nearest class mean", ("nc3", "nc4")),
    ("Matrix entropies (nats)", ("h_head", "h_means", "h_samples", "h_labels")),
    ("MI / MIR / HDR", ("mi", "mir", "hdr", "mi_samples", "mir_samples", "hdr_samples", "mi_samples_onehot")),
    ("Accuracy", ("acc_train", "acc_test")),
)
#: Metrics drawn on a log scale when all their values are positive.
LOG_KEYS = ("nc1", "nc1_cdnv")


def _number(value: Any) -> float:
    """A value as a float; None, NaN and non-numbers become NaN (a gap in the line)."""
    number = as_number(value)
    return math.nan if number is None else number


def _draw_panel(
    ax: Any,
    x: Sequence[float],
    series: Mapping[str, Sequence[Any]],
    keys: Sequence[str],
    targets: Mapping[str, Any],
    log_keys: Sequence[str],
) -> None:
    """One panel: each metric as a line with markers, its NC target dashed in the same colour."""
    values = {key: [_number(v) for v in series[key]] for key in keys}
    finite = [v for key in keys for v in values[key] if math.isfinite(v)]
    use_log = any(key in log_keys for key in keys) and bool(finite) and min(finite) > 0
    drawn_target = False
    for key in keys:
        (line,) = ax.plot(x, values[key], marker="o", markersize=3, label=key)
        target = _number(targets.get(key))
        if math.isfinite(target) and (target > 0 or not use_log):
            ax.axhline(target, linestyle="--", linewidth=1, color=line.get_color())
            drawn_target = True
    if use_log:
        ax.set_yscale("log")
    handles, labels = ax.get_legend_handles_labels()
    if drawn_target:  # a target of 0 has no place on a log axis
        handles.append(Line2D([], [], linestyle="--", color="grey", linewidth=1))
        labels.append("NC target")
    ax.legend(handles, labels, fontsize="small")
    ax.grid(True, alpha=0.3)


def plot_series(
    x: Sequence[float],
    series: Mapping[str, Sequence[Any]],
    targets: Mapping[str, Any],
    path: str | Path,
    xlabel: str,
    title: str,
    *,
    panels: Sequence[Sequence[str]] | None = None,
    panel_titles: Sequence[str] | None = None,
    log_keys: Sequence[str] = LOG_KEYS,
    xticklabels: Sequence[str] | None = None,
) -> None:
    """Plot ``series`` (key → values, None = undefined) against ``x`` and write a PNG atomically to ``path``.

    ``panels`` is a list of lists of series keys (default: one panel per key); keys missing from
    ``series`` are skipped and empty panels dropped. Each key's NC target in ``targets`` is a dashed
    line in the key's colour; a panel holding a ``log_keys`` metric uses a log y-axis when all its
    values are positive. ``xticklabels`` labels the x positions (e.g. checkpoint names).
    """
    for key, values in series.items():
        if len(values) != len(x):
            raise ValueError(f"series {key!r} has {len(values)} values for {len(x)} x positions")
    layout = [list(keys) for keys in (panels if panels is not None else [[key] for key in series])]
    names = list(panel_titles) if panel_titles is not None else [", ".join(keys) for keys in layout]
    if len(names) != len(layout):
        raise ValueError(f"{len(names)} panel titles for {len(layout)} panels")
    kept = [([k for k in keys if k in series], name) for keys, name in zip(layout, names, strict=True)]
    kept = [(keys, name) for keys, name in kept if keys]
    ncols = min(3, max(1, len(kept)))
    nrows = max(1, math.ceil(len(kept) / ncols))
    figure = Figure(figsize=(5.0 * ncols, 3.6 * nrows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    # steps spread over more than two decades (log-spaced checkpoints) read better on a log x-axis
    positive = [float(value) for value in x if value is not None and float(value) > 0]
    log_x = xticklabels is None and len(positive) == len(x) > 2 and max(positive) / min(positive) > 100
    for ax, (keys, name) in zip(axes, kept, strict=False):
        _draw_panel(ax, x, series, keys, targets, log_keys)
        ax.set_title(name, fontsize="medium")
        ax.set_xlabel(xlabel + (" (log scale)" if log_x else ""))
        if log_x:
            ax.set_xscale("log")
        if xticklabels is not None:
            ax.set_xticks(list(x), list(xticklabels), rotation=45, ha="right", fontsize="small")
    for ax in axes[len(kept) :]:
        ax.set_visible(False)
    if not kept:
        axes[0].set_visible(True)
        axes[0].text(0.5, 0.5, "no metric values to plot", ha="center", va="center")
        axes[0].set_axis_off()
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())


def trajectory_panels(metric_keys: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    """Group metric keys into the FAMILIES panels (plus "Other" for the rest), with their titles."""
    panels, titles = [], []
    grouped: set[str] = set()
    for title, family in FAMILIES:
        keys = [key for key in family if key in metric_keys]
        grouped.update(family)
        if keys:
            panels.append(keys)
            titles.append(title)
    others = [key for key in metric_keys if key not in grouped]
    if others:
        panels.append(others)
        titles.append("Other")
    return panels, titles


def plot_trajectory(
    traj: Mapping[str, Any], path: str | Path, *, x: str = "step", title: str | None = None
) -> None:
    """Plot every metric of a trajectory report against its step (``x="step"``) or record index.

    Falls back to the index when some record has no step. One panel per metric family, log y for
    NC1 metrics when positive, NC targets dashed in each metric's colour; writes a PNG atomically.
    """
    if x not in ("step", "index"):
        raise ValueError(f"x must be 'step' or 'index', got {x!r}")
    records: Sequence[Mapping[str, Any]] = traj.get("records") or []
    keys: list[str] = []
    targets: dict[str, Any] = {}
    for record in records:
        keys.extend(key for key in record.get("metrics") or {} if key not in keys)
        targets.update(record.get("targets") or {})
    series = {key: [(record.get("metrics") or {}).get(key) for record in records] for key in keys}
    steps = [record.get("step") for record in records]
    use_steps = x == "step" and bool(records) and all(isinstance(s, (int, float)) for s in steps)
    positions = [float(s) for s in steps] if use_steps else [float(i) for i in range(len(records))]
    labels = [str(record.get("label", i)) for i, record in enumerate(records)]
    ticks = labels if not use_steps and 0 < len(records) <= 12 else None
    panels, titles = trajectory_panels(keys)
    num_classes = next(
        ((r.get("features") or {}).get("num_classes") for r in records if r.get("features")), None
    )
    default_title = f"nc-audit trajectory: {len(records)} checkpoints" + (
        f", C = {num_classes}" if num_classes else ""
    )
    plot_series(
        positions,
        series,
        targets,
        path,
        "step" if use_steps else "checkpoint",
        title or default_title,
        panels=panels,
        panel_titles=titles,
        xticklabels=ticks,
    )
