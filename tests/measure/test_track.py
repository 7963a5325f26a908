"""`nc-audit track` and ``measure_trajectory``: a training run measured checkpoint by checkpoint (docs/DESIGN.md).

What a trajectory promises:
- its metrics are those of ``measure`` on each checkpoint alone (batching is an implementation detail);
- its records come in training order: by the step a checkpoint records, else by a natural sort of the
  names ("epoch_2" before "epoch_10");
- ``--json`` writes schema ``nc-audit-trajectory/1``, one ``nc-audit-report/1`` record per checkpoint with
  its step and label; a monitor's ``.jsonl`` file is read the same way;
- ``--plot`` writes a PNG;
- a trajectory is one architecture measured on one data set: anything else is bad input (exit 2, one
  line on stderr naming the file and what to do, no traceback, no report written).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import pytest
from conftest import backbone_state, make_random_problem
from reference import Problem, relative_difference
from runs import (
    SAMPLES,
    assert_bad_input,
    collapsing_problem,
    invoke,
    sample_checkpoints,
    write_features,
    write_head_checkpoint,
    write_monitor_file,
    write_run,
)

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.measurement.api import measure
from nc_audit.measurement.trajectory import discover, measure_trajectory, order_by_step, step_from_name
from nc_audit.metrics.catalog import CLASS_LEVEL_KEYS
from nc_audit.report.model import Report

REPORT_SCHEMA = "nc-audit-report/1"
TRAJECTORY_SCHEMA = "nc-audit-trajectory/1"
BATCHED_RTOL = 1e-10
pytestmark = pytest.mark.usefixtures("isolated_cli")


def assert_same_metrics(batched: dict[str, float | None], alone: dict[str, float | None], where: str) -> None:
    """Same keys; every value equal to 1e-10 relative (both null where undefined)."""
    assert set(batched) == set(alone), where
    assert set(CLASS_LEVEL_KEYS) <= set(batched), where
    for key in alone:
        difference = relative_difference(batched[key], alone[key])
        assert difference <= BATCHED_RTOL, f"{where} {key}: {batched[key]!r} vs {alone[key]!r}"


def measured_alone(checkpoint: Path) -> Report:
    return measure(checkpoint, features=checkpoint.with_suffix(".h5"), device="cpu")


# --- batched metrics = one checkpoint at a time -------------------------------------------------------
@pytest.fixture(scope="module")
def sample_reports() -> list[Report]:
    return measure_trajectory([SAMPLES], device="cpu")


def test_sample_trajectory_equals_measuring_each_checkpoint_alone(sample_reports: list[Report]) -> None:
    checkpoints = sample_checkpoints()
    assert [report.label for report in sample_reports] == [p.name for p in checkpoints]
    for report, checkpoint in zip(sample_reports, checkpoints, strict=True):
        alone = measured_alone(checkpoint)
        assert report.step == alone.checkpoint["step"]
        assert report.checkpoint["path"] == str(checkpoint)
        assert report.targets == alone.targets
        assert_same_metrics(report.metrics, alone.metrics, checkpoint.name)


def test_sample_trajectory_is_in_epoch_order_with_the_recorded_steps(sample_reports: list[Report]) -> None:
    steps = [report.step for report in sample_reports]
    epochs = [int(re.search(r"(\d+)", p.stem).group(1)) for p in sample_checkpoints()]
    assert steps == epochs == sorted(epochs)


@pytest.mark.parametrize("absent_class", [None, 3], ids=["all-classes", "class-3-absent-everywhere"])
def test_synthetic_trajectory_equals_measuring_each_checkpoint_alone(
    tmp_path: Path, absent_class: int | None
) -> None:
    """Random unbalanced problems (C = 7, d = 12, different N per checkpoint) behind an encoder and neck."""
    run = tmp_path / "run"
    run.mkdir()
    for index, seed in enumerate((11, 12, 13, 14)):
        problem = make_random_problem(seed=seed)
        keep = problem.labels != absent_class
        problem = Problem(problem.features[keep], problem.labels[keep], problem.W, problem.b)
        path = run / f"ckpt_{index}.pt"
        save_checkpoint(path, backbone_state(problem, seed=seed), None, meta={"step": 100 * index})
        write_features(path.with_suffix(".h5"), problem)

    reports = measure_trajectory([run], device="cpu")

    assert [report.label for report in reports] == [f"ckpt_{i}.pt" for i in range(4)]
    for report in reports:
        alone = measured_alone(run / report.label)
        assert report.checkpoint["head"] == alone.checkpoint["head"] == "fc"
        assert report.features["num_classes"] == (7 if absent_class is None else 6)
        assert_same_metrics(report.metrics, alone.metrics, report.label)


# --- order --------------------------------------------------------------------------------------------
def test_recorded_steps_order_the_trajectory_even_against_the_names(tmp_path: Path) -> None:
    """run_1 was saved at step 30, run_3 at step 10: training order is run_3, run_2, run_1."""
    noise = {"run_1": 0.2, "run_2": 0.5, "run_3": 0.9}
    run = write_run(tmp_path / "run", noise, steps={"run_1": 30, "run_2": 20, "run_3": 10})

    reports = measure_trajectory([run], device="cpu")

    assert [(r.step, r.label) for r in reports] == [(10, "run_3.pt"), (20, "run_2.pt"), (30, "run_1.pt")]
    for report in reports:  # each record belongs to its own checkpoint, not to a position
        assert_same_metrics(report.metrics, measured_alone(run / report.label).metrics, report.label)
    nc1 = [r.metrics["nc1"] for r in reports]
    assert nc1 == sorted(nc1, reverse=True)  # the noise shrinks with the step


def test_without_recorded_steps_the_step_in_the_name_orders_and_labels_the_trajectory(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", {"epoch_10": 0.2, "epoch_2": 0.5, "epoch_1": 0.9})

    reports = measure_trajectory([run], device="cpu")

    assert [(r.step, r.label) for r in reports] == [(1, "epoch_1.pt"), (2, "epoch_2.pt"), (10, "epoch_10.pt")]


def test_names_without_a_step_sort_naturally(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", {"model_v10": 0.2, "model_v2": 0.5, "model_v1": 0.9})

    reports = measure_trajectory([run], device="cpu")

    assert [(r.step, r.label) for r in reports] == [(None, "model_v1.pt"), (None, "model_v2.pt"), (None, "model_v10.pt")]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("epoch_4.pt", 4),
        ("epoch_0750.pt", 750),
        ("step-100.safetensors", 100),
        ("epoch=3-step=400.ckpt", 400),  # Lightning: the step, not the epoch
        ("checkpoint-1500.bin", 1500),
        ("iter_20.pt", 20),
        ("1000.pt", 1000),
        ("resnet50.pt", None),  # a number that is no step
        ("profit3.pt", None),
        ("final.pt", None),
    ],
)
def test_step_from_name(name: str, step: int | None) -> None:
    assert step_from_name(Path(name)) == step


def test_track_shows_the_step_from_the_name_and_plots_against_it(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", {"epoch_4": 0.5, "epoch_12": 0.2})
    out = tmp_path / "t.json"

    result = invoke("track", run, "--json", out)

    assert result.exit_code == 0, result.output
    assert [(r["step"], r["label"]) for r in json.loads(out.read_text())["records"]] == [(4, "epoch_4.pt"), (12, "epoch_12.pt")]  # fmt: skip
    rows = [line.split("│")[1:3] for line in result.stdout.splitlines() if "epoch_" in line]
    assert [(step.strip(), name.strip()) for step, name in rows] == [
        ("4", "epoch_4.pt"),
        ("12", "epoch_12.pt"),
    ]


def test_dumps_that_hold_their_head_are_ordered_by_their_step_attribute(tmp_path: Path) -> None:
    run = tmp_path / "dumps"
    run.mkdir()
    for name, step, noise in (("d_1", 300, 0.2), ("d_2", 200, 0.5), ("d_3", 100, 0.9)):
        problem = collapsing_problem(noise)
        with h5py.File(write_features(run / f"{name}.h5", problem), "a") as handle:
            handle["head/weight"], handle["head/bias"] = problem.W, problem.b
            handle.attrs["step"] = str(step)

    reports = measure_trajectory([run], device="cpu")

    assert [(r.step, r.label) for r in reports] == [(100, "d_3.h5"), (200, "d_2.h5"), (300, "d_1.h5")]
    for report in reports:
        alone = measure(run / report.label, device="cpu")
        assert_same_metrics(report.metrics, alone.metrics, report.label)


def test_when_some_checkpoint_records_no_step_the_names_decide(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_head_checkpoint(run / "late.pt", collapsing_problem(0.2), step=1)
    write_head_checkpoint(run / "early.pt", collapsing_problem(0.5), step=None)

    assert order_by_step(discover([run])) == [(run / "early.pt", None), (run / "late.pt", 1)]


def test_files_given_one_by_one_are_put_in_step_order(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", {"b": 0.3, "a": 0.6}, steps={"b": 7, "a": 3})

    ordered = order_by_step(discover([run / "b.pt", run / "a.pt"]))

    assert ordered == [(run / "a.pt", 3), (run / "b.pt", 7)]


# --- the command: JSON trajectory, monitor files, plot ----------------------------------------------------
def test_track_dir_writes_one_record_per_checkpoint_in_order(tmp_path: Path) -> None:
    checkpoints = sample_checkpoints()
    out = tmp_path / "trajectory.json"

    result = invoke("track", SAMPLES, "--json", out)

    assert result.exit_code == 0, result.output
    trajectory = json.loads(out.read_text())
    assert trajectory["schema"] == TRAJECTORY_SCHEMA
    assert trajectory["passed"] is True
    records = trajectory["records"]
    assert [(r["step"], r["label"]) for r in records] == [
        (int(re.search(r"(\d+)", p.stem).group(1)), p.name) for p in checkpoints
    ]
    for record, checkpoint in zip(records, checkpoints, strict=True):
        assert record["schema"] == REPORT_SCHEMA
        assert record["checkpoint"]["path"] == str(checkpoint)
        assert record["features"]["num_classes"] == 10
        assert record["checks"] == [] and record["passed"] is True
        assert set(CLASS_LEVEL_KEYS) <= set(record["metrics"])


def test_track_json_on_stdout_is_the_same_trajectory(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", {"e1": 0.9, "e2": 0.4}, steps={"e1": 1, "e2": 2})
    out = tmp_path / "t.json"

    result = invoke("track", run, "--format", "json", "--json", out)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(out.read_text())


def test_track_reads_a_monitor_jsonl_file_record_by_record(tmp_path: Path) -> None:
    written = write_monitor_file(tmp_path / "run.jsonl")
    out = tmp_path / "t.json"

    result = invoke("track", tmp_path / "run.jsonl", "--json", out)

    assert result.exit_code == 0, result.output
    trajectory = json.loads(out.read_text())
    assert trajectory["schema"] == TRAJECTORY_SCHEMA
    records = trajectory["records"]
    assert [(r["step"], r["label"]) for r in records] == [(0, "toy-run"), (10, "toy-run"), (20, "toy-run")]
    for record, line in zip(records, written, strict=True):
        assert record["schema"] == REPORT_SCHEMA
        assert record["metrics"] == line["metrics"]
        assert record["targets"] == line["targets"]


def test_a_hand_written_jsonl_in_the_record_format_is_read_too(tmp_path: Path) -> None:
    """What a user's own logger could write: one report dict per line with step and label."""
    path = tmp_path / "mine.jsonl"
    lines = [
        {"schema": REPORT_SCHEMA, "step": step, "label": f"s{step}", "metrics": {"nc1": nc1, "mir": 0.5},
         "targets": {"nc1": 0.0, "mir": 0.5}, "features": {"num_classes": 3}, "checks": [], "passed": True}
        for step, nc1 in ((5, 2.0), (15, 1.0))
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "t.json"

    result = invoke("track", path, "--json", out)

    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text())["records"]
    assert [(r["step"], r["label"], r["metrics"]["nc1"]) for r in records] == [
        (5, "s5", 2.0),
        (15, "s15", 1.0),
    ]


def test_plot_writes_a_png(tmp_path: Path) -> None:
    import matplotlib.image

    run = write_run(tmp_path / "run", {"e1": 0.9, "e2": 0.5, "e3": 0.2}, steps={"e1": 1, "e2": 2, "e3": 3})
    png = tmp_path / "plots" / "trajectory.png"
    png.parent.mkdir()

    result = invoke("track", run, "--plot", png)

    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.shape[2] in (3, 4)


# --- bad input: exit 2, one line, no traceback, nothing written -------------------------------------------
def test_an_empty_folder_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "t.json"

    result = invoke("track", tmp_path / "empty", "--json", out)

    assert_bad_input(result, "empty", "no checkpoints")
    assert not out.exists()


def test_a_missing_path_is_bad_input(tmp_path: Path) -> None:
    result = invoke("track", tmp_path / "nowhere")

    assert_bad_input(result, "nowhere", "no such")


def test_checkpoints_with_different_class_counts_are_bad_input(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_head_checkpoint(run / "a.pt", collapsing_problem(0.5, num_classes=5), step=1)
    write_head_checkpoint(run / "b.pt", collapsing_problem(0.5, num_classes=4), step=2)
    out = tmp_path / "t.json"

    result = invoke("track", run, "--json", out)

    line = assert_bad_input(result, "b.pt", "4 classes", "a.pt", "5", "one architecture")
    assert "feature dimension" not in line
    assert not out.exists()
    with pytest.raises(InputError, match="classes"):
        measure_trajectory([run], device="cpu")


def test_checkpoints_with_different_feature_dimensions_are_bad_input(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_head_checkpoint(run / "a.pt", collapsing_problem(0.5, feature_dim=8), step=1)
    write_head_checkpoint(run / "b.pt", collapsing_problem(0.5, feature_dim=6), step=2)
    out = tmp_path / "t.json"

    result = invoke("track", run, "--json", out)

    assert_bad_input(result, "b.pt", "feature dimension 6", "a.pt", "8", "one architecture")
    assert not out.exists()


def test_a_checkpoint_without_features_beside_it_says_what_to_pass(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", {"e1": 0.9, "e2": 0.4}, steps={"e1": 1, "e2": 2})
    (run / "e2.h5").unlink()

    result = invoke("track", run)

    assert_bad_input(result, "e2.pt", "--data", "e2.h5")


def test_the_toy_run_only_moves_nc1_and_cdnv_as_the_square_of_the_noise(tmp_path: Path) -> None:
    """What the gate tests rely on: in the collapsing toy run, a smaller noise is strictly closer to NC."""
    low = measured_alone(write_head_checkpoint(tmp_path / "low.pt", collapsing_problem(0.1), step=2))
    high = measured_alone(write_head_checkpoint(tmp_path / "high.pt", collapsing_problem(1.0), step=1))

    for key in ("nc1", "nc1_cdnv"):
        assert high.metrics[key] == pytest.approx(100 * low.metrics[key], rel=1e-9)
    assert low.metrics["nc4"] == high.metrics["nc4"] == 0.0
    for key in set(CLASS_LEVEL_KEYS) - {"nc1", "nc1_cdnv"}:
        assert relative_difference(high.metrics[key], low.metrics[key]) <= 1e-12, key
