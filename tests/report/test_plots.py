"""Plots read back from their matplotlib Figures: which panels exist, which lines each holds (labels, x and
y data), the NC target lines, the scales — not merely that a PNG was written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from nc_audit.report import figures, plots
from nc_audit.report.figures import finetune_figure, grokking_figure, interpolation_figure
from nc_audit.report.model import Report, Trajectory
from nc_audit.report.plots import Panel, panel_figure, save_figure

MIR_NC, LOG9 = 0.952351, math.log(9)


def record(step: int | None, nc1: float, mir: float | None, **extra_metrics: Any) -> dict[str, Any]:
    metrics = {"nc1": nc1, "nc1_cdnv": nc1 / 3, "nc3": 0.2, "nc4": 0.01 * nc1, "h_head": 2.0, "h_means": 2.1,
               "mi": 1.7, "mir": mir, "hdr": 0.02 * nc1, **extra_metrics}  # fmt: skip
    targets = {"nc1": 0.0, "nc1_cdnv": 0.0, "nc3": 0.0, "nc4": 0.0, "h_head": LOG9, "h_means": LOG9,
               "mi": 2.09, "mir": MIR_NC, "hdr": 0.0}  # fmt: skip
    return {"metrics": metrics, "targets": targets, "step": step, "label": f"epoch_{step}.pt",
            "features": {"num_classes": 10}, "details": {"accuracy": 1 - nc1 / 10, "ncc_accuracy": 0.9}}  # fmt: skip


def trajectory(*records: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "nc-audit-trajectory/1", "records": list(records)}


def trajectory_figure(traj: dict[str, Any]) -> Any:
    """The figure of a trajectory given in its JSON form (read back as the typed Trajectory)."""
    return plots.trajectory_figure(Trajectory.from_dict(traj, "run.json"))


def report_figure(report: dict[str, Any]) -> Any:
    return figures.report_figure(Report.from_dict(report, "run.json"))


def panels(figure: Any) -> dict[str, Any]:
    """Axes by title (without the scale note)."""
    return {ax.get_title().split(" (log scale)")[0].split(";")[0]: ax for ax in figure.axes}


def lines(ax: Any) -> dict[str, tuple[list[float], list[float]]]:
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}


SAMPLE = trajectory(record(1, 1.2, 0.95), record(3, 0.7, 0.82), record(750, 0.38, 0.867))


def test_mir_and_hdr_have_panels_of_their_own_with_the_nc_target() -> None:
    figure = trajectory_figure(SAMPLE)
    by_title = panels(figure)
    mir = lines(by_title["MIR"])
    assert set(mir) == {"mir", "NC target"}
    assert mir["mir"] == ([1.0, 3.0, 750.0], [0.95, 0.82, 0.867])
    assert mir["NC target"][1] == [MIR_NC, MIR_NC]
    low, high = by_title["MIR"].get_ylim()
    assert high - low < 0.2  # a move of 0.01 is visible: the axis spans MIR's range, not NC1's
    assert set(lines(by_title["HDR"])) == {"hdr", "NC target"}
    assert lines(by_title["MI"])["NC target"][1] == [2.09, 2.09]
    assert lines(by_title["matrix entropies"])["NC target"][1] == [LOG9, LOG9]  # one line for both


def test_nc1_is_on_a_log_axis_and_its_zero_target_is_named_instead_of_drawn() -> None:
    ax = panels(trajectory_figure(SAMPLE))["NC1"]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "log"  # steps 1..750: more than two decades
    assert set(lines(ax)) == {"nc1", "nc1_cdnv"}
    assert "NC target 0" in ax.get_title()


def test_a_checkpoint_trajectory_has_an_accuracy_panel() -> None:
    ax = panels(trajectory_figure(SAMPLE))["accuracy"]
    assert lines(ax)["accuracy"][1] == pytest.approx([0.88, 0.93, 0.962])
    assert lines(ax)["nearest class mean"][1] == [0.9, 0.9, 0.9]


def test_every_panel_holds_data_and_there_are_no_empty_axes() -> None:
    traj = trajectory(record(1, 1.0, None), record(2, 0.5, None))  # MIR undefined throughout (C = 2)
    figure = trajectory_figure(traj)
    assert "MIR" not in panels(figure)
    for ax in figure.axes:
        assert ax.get_visible()
        assert any(any(math.isfinite(y) for y in ys) for _, (_, ys) in lines(ax).items())


def test_a_monitor_run_puts_loss_and_lr_on_log_axes_of_their_own() -> None:
    records = [
        record(
            step,
            1.0 / (step + 1),
            0.9,
            accuracy=0.5 + step / 100,
            loss=2.0 / (step + 1),
            lr=10.0 ** -(step / 10 + 1),
        )
        for step in (0, 10, 20)
    ]
    for item in records:
        del item["details"]
    by_title = panels(trajectory_figure(trajectory(*records)))
    assert set(lines(by_title["learning rate"])) == {"lr"}
    assert by_title["learning rate"].get_yscale() == "log"
    assert set(lines(by_title["loss"])) == {"loss"} and by_title["loss"].get_yscale() == "log"
    assert set(lines(by_title["accuracy"])) == {"accuracy"}
    assert lines(by_title["accuracy"])["accuracy"][0] == [0.0, 10.0, 20.0]


def test_without_steps_checkpoints_are_named_on_the_x_axis() -> None:
    traj = trajectory(record(None, 1.0, 0.9), record(None, 0.5, 0.91))
    ax = panels(trajectory_figure(traj))["MIR"]
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["epoch_None.pt"] * 2
    assert lines(ax)["mir"][0] == [0.0, 1.0]


def test_interpolation_plot_has_six_full_panels() -> None:
    document = {
        "a": {"path": "runs/a.pt"}, "b": {"path": "runs/b.pt"}, "data": "digits", "split": "train",
        "targets": {"nc1": 0.0, "nc1_cdnv": 0.0, "nc4": 0.0, "mir": MIR_NC, "hdr": 0.0},
        "records": [{"alpha": a, "accuracy": 0.9 + a / 10, "loss": 0.2 - a / 10,
                     "metrics": {"nc1": 0.4 - a / 10, "nc1_cdnv": 0.1, "nc4": 0.01, "mir": 0.85 + a / 100, "hdr": 0.1}}
                    for a in (0.0, 0.5, 1.0)],
    }  # fmt: skip
    figure = interpolation_figure(document)
    by_title = panels(figure)
    assert list(by_title) == ["accuracy", "cross-entropy", "NC1", "NC4", "MIR", "HDR"]
    assert len(figure.axes) == 6  # a 2×3 grid, no empty cell
    assert lines(by_title["MIR"])["mir"] == ([0.0, 0.5, 1.0], [0.85, 0.855, 0.86])
    assert lines(by_title["MIR"])["NC target"][1] == [MIR_NC, MIR_NC]
    assert by_title["cross-entropy"].get_yscale() == "log"


def test_grokking_plot_reads_train_and_test_series_and_marks_the_events() -> None:
    steps = [0, 10, 2000]
    document = {
        "steps": steps,
        "series": {"train accuracy": [0.1, 1.0, 1.0], "test accuracy": [0.0, 0.2, 0.99],
                   "mir (train features)": [0.95, 0.96, 0.9], "mir (test features)": [0.94, 0.95, 0.88],
                   "hdr (train features)": [0.04, 0.03, 0.1], "hdr (test features)": [0.08, 0.07, 0.2]},
        "history": [{"step": s, "train_loss": 4.0 / (s + 1), "test_loss": 5.0 / (s + 1)} for s in steps],
        "train": {"records": [{"targets": {"mir": 0.9978, "hdr": 0.0}}]},
        "events": {"train_accuracy_step": 10, "test_accuracy_step": 2000, "threshold": 0.99},
        "config": {"p": 97, "train_fraction": 0.4},
    }  # fmt: skip
    by_title = panels(grokking_figure(document))
    assert list(by_title) == ["accuracy (measured)", "cross-entropy (training loop)", "MIR", "HDR"]
    mir = lines(by_title["MIR"])
    assert mir["mir (test features)"] == ([0.0, 10.0, 2000.0], [0.94, 0.95, 0.88])
    assert mir["NC target"][1] == [0.9978, 0.9978]
    marks = [line for line in by_title["MIR"].get_lines() if line.get_linestyle() == ":"]
    assert sorted(line.get_xdata()[0] for line in marks) == [10, 2000]
    assert by_title["MIR"].get_xscale() == "symlog"  # step 0 among steps over two decades


def test_finetune_plot_reads_the_history() -> None:
    history = [{"epoch": e, "loss": None if e == 0 else 1.0 / e, "ce": None if e == 0 else 0.9 / e,
                "train_accuracy": 0.9 + e / 100, "test_accuracy": 0.8, "nc1": 0.4 - e / 10, "mir": 0.86, "hdr": 0.1}
               for e in (0, 1, 2)]  # fmt: skip
    by_title = panels(finetune_figure({"history": history}))
    assert list(by_title) == ["loss", "accuracy", "NC1", "MIR", "HDR"]
    assert lines(by_title["NC1"])["nc1"] == ([0.0, 1.0, 2.0], pytest.approx([0.4, 0.3, 0.2]))
    assert set(lines(by_title["loss"])) == {"loss", "ce"}


def test_report_figure_has_a_bar_per_metric_with_a_target() -> None:
    report = record(5, 0.4, 0.9)
    report["metrics"]["accuracy"] = 1.0  # no target: no bar
    ax = report_figure(report).axes[0]
    names = [tick.get_text() for tick in ax.get_yticklabels()]
    assert set(names) == set(report["targets"])
    widths = {name: patch.get_width() for name, patch in zip(names, ax.patches, strict=True)}
    assert widths["mir"] == pytest.approx(MIR_NC - 0.9)


def test_panel_figure_rejects_series_that_do_not_match_x() -> None:
    with pytest.raises(ValueError, match="3 x positions"):
        panel_figure([0, 1, 2], [Panel("p", {"nc1": [1.0]})], xlabel="epoch", title="bad")


def test_save_figure_writes_a_png_atomically(tmp_path: Path) -> None:
    path = tmp_path / "trajectory.png"
    save_figure(trajectory_figure(SAMPLE), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(path).shape[0] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["trajectory.png"]
