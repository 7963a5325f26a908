"""The library and the CLI gate through one function (nc_audit.gating.gate.gate): each case below runs
through `nc-audit measure|track` (in-process) and through the library (measure, measure_arrays,
measure_trajectory, or gate on a monitor's records), and both must give the same verdict and checks, or
the same refusal message. Each case also states its verdict, so a bug both paths share still fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from runs import collapsing_problem, invoke, write_head_checkpoint, write_monitor_file, write_run

import nc_audit
from nc_audit.core.errors import InputError
from nc_audit.gating.gate import gate
from nc_audit.measurement.jsonl import read_trajectory_jsonl
from nc_audit.report.model import Report, Trajectory

pytestmark = pytest.mark.usefixtures("isolated_cli")

Run = Callable[[], Report | Trajectory]


@dataclass(frozen=True)
class Setup:
    """One gating case: the CLI's arguments and the library call that must agree with them."""

    argv: list[str | Path]
    library: Run
    expected: bool | str  # the verdict, or a fragment of the refusal


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def _checkpoint(tmp_path: Path, name: str, noise: float) -> Path:
    return write_head_checkpoint(tmp_path / f"{name}.pt", collapsing_problem(noise), step=None)


def _report_baseline(tmp_path: Path, name: str, noise: float) -> Path:
    checkpoint = _checkpoint(tmp_path, f"base_{name}", noise)
    report = nc_audit.measure(checkpoint, features=checkpoint.with_suffix(".h5"), device="cpu")
    return _write(tmp_path / f"{name}.json", report.to_dict())


def _foreign_baseline(tmp_path: Path) -> Path:
    return _write(tmp_path / "bogus.json", {"schema": "nc-audit-report/1", "metrics": {"bogus": 0.5}})


def _measure(checkpoint: Path, *flags: str | Path, **options: Any) -> Setup:
    features = checkpoint.with_suffix(".h5")
    return Setup(
        ["measure", checkpoint, "--features", features, *flags],
        lambda: nc_audit.measure(checkpoint, features=features, device="cpu", **options),
        False,
    )


def _track(run: Path, *flags: str | Path, gate_mode: str = "last", **options: Any) -> Setup:
    return Setup(
        ["track", run, "--gate", gate_mode, *flags],
        lambda: nc_audit.measure_trajectory([run], device="cpu", gate=gate_mode, **options),
        False,
    )


def _gate_run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run", {"e1": 2.0, "e2": 0.1, "e3": 0.3}, {"e1": 1, "e2": 2, "e3": 3})


def _best_baseline(tmp_path: Path) -> Path:
    """A baseline trajectory of other checkpoints: its most accurate record (b1) is near NC, its last (b2)
    far from it. ``--gate best`` compares with b1 (the record the same gate picks), never with b2."""
    records = [
        {"schema": "nc-audit-report/1", "metrics": {"nc1": 1e-6}, "details": {"accuracy": 0.99}, "label": "b1", "step": 1},
        {"schema": "nc-audit-report/1", "metrics": {"nc1": 1e6}, "details": {"accuracy": 0.10}, "label": "b2", "step": 2},
    ]  # fmt: skip
    return _write(tmp_path / "best.json", {"schema": "nc-audit-trajectory/1", "records": records})


def _jsonl(tmp_path: Path, *flags: str, gate_mode: str, rules: tuple[str, ...], bare: bool = False) -> Setup:
    path = tmp_path / "run.jsonl"
    records = write_monitor_file(path)
    if bare:  # no accuracy anywhere
        for record in records:
            record["metrics"].pop("accuracy")
            record.get("details", {}).pop("accuracy", None)  # a Monitor record keeps it in details too
        path.write_text("".join(json.dumps(record) + "\n" for record in records))

    def library() -> Trajectory:
        return gate(
            Trajectory.from_records(read_trajectory_jsonl(path), str(path)), rules, None, 0.0, gate_mode
        )

    return Setup(["track", path, "--gate", gate_mode, *flags], library, False)


def _case(name: str, expected: bool | str) -> Callable[[Callable[[Path], Setup]], Callable[[Path], Setup]]:
    def register(build: Callable[[Path], Setup]) -> Callable[[Path], Setup]:
        CASES[name] = (build, expected)
        return build

    return register


CASES: dict[str, tuple[Callable[[Path], Setup], bool | str]] = {}

_case("measure-rule-passes", True)(
    lambda t: _measure(_checkpoint(t, "m", 0.4), "--fail-on", "nc1<=1e9", fail_on=["nc1<=1e9"])
)
_case("measure-rule-fails", False)(
    lambda t: _measure(_checkpoint(t, "m", 0.4), "--fail-on", "nc1<=1e-12", fail_on=["nc1<=1e-12"])
)
_case("measure-regression", False)(
    lambda t: _measure(_checkpoint(t, "m", 0.8), "--baseline", b := _report_baseline(t, "b", 0.4), baseline=b)
)
_case("measure-improvement", True)(
    lambda t: _measure(_checkpoint(t, "m", 0.4), "--baseline", b := _report_baseline(t, "b", 0.8), baseline=b)
)
_case("measure-tolerance", True)(
    lambda t: _measure(
        _checkpoint(t, "m", 0.8),
        "--baseline",
        b := _report_baseline(t, "b", 0.4),
        "--tolerance",
        "1e9",
        baseline=b,
        tolerance=1e9,
    )
)
_case("measure-baseline-checks-nothing", "shares no metric value")(
    lambda t: _measure(_checkpoint(t, "m", 0.4), "--baseline", b := _foreign_baseline(t), baseline=b)
)
_case("track-last-rule", True)(lambda t: _track(_gate_run(t), "--fail-on", "nc1<=0.5", fail_on=["nc1<=0.5"]))
_case("track-all-rule", False)(
    lambda t: _track(_gate_run(t), "--fail-on", "nc1<=0.5", gate_mode="all", fail_on=["nc1<=0.5"])
)
_case("track-last-baseline-checks-nothing", "shares no metric value")(
    lambda t: _track(_gate_run(t), "--baseline", b := _foreign_baseline(t), baseline=b)
)
_case("track-all-baseline-checks-nothing", "shares no metric value")(
    lambda t: _track(_gate_run(t), "--baseline", b := _foreign_baseline(t), gate_mode="all", baseline=b)
)
_case("track-best-baseline-of-other-checkpoints", False)(
    lambda t: _track(_gate_run(t), "--baseline", b := _best_baseline(t), gate_mode="best", baseline=b)
)
_case("track-all-baseline-of-other-checkpoints", "shares no checkpoint label")(
    lambda t: _track(_gate_run(t), "--baseline", b := _best_baseline(t), gate_mode="all", baseline=b)
)
_case("track-unknown-rule-metric", "did you mean 'mir'?")(
    lambda t: _track(_gate_run(t), "--fail-on", "mirr>=0", fail_on=["mirr>=0"])
)
_case("jsonl-best", True)(lambda t: _jsonl(t, "--fail-on", "nc1<=1e9", gate_mode="best", rules=("nc1<=1e9",)))
_case("jsonl-best-without-accuracy", "--gate best picks")(
    lambda t: _jsonl(t, "--fail-on", "nc1<=1", gate_mode="best", rules=("nc1<=1",), bare=True)
)


def _cli_checks(path: Path) -> list[tuple[Any, ...]]:
    data = json.loads(path.read_text())
    records = data["records"] if "records" in data else [data]
    return [
        (r.get("label"), r.get("gated"), c["name"], c["passed"], c["value"])
        for r in records
        for c in r["checks"]
    ]


def _library_checks(result: Report | Trajectory) -> list[tuple[Any, ...]]:
    data = result.to_dict()
    records = data["records"] if "records" in data else [data]
    return [
        (r.get("label"), r.get("gated"), c["name"], c["passed"], c["value"])
        for r in records
        for c in r["checks"]
    ]


@pytest.mark.parametrize("name", list(CASES))
def test_the_cli_and_the_library_give_the_same_verdict_or_refusal(tmp_path: Path, name: str) -> None:
    build, expected = CASES[name]
    setup = build(tmp_path)
    out = tmp_path / "cli.json"
    result = invoke(*map(str, setup.argv[:1]), *setup.argv[1:], "--json", out)
    try:
        library = setup.library()
    except InputError as error:
        assert isinstance(expected, str) and expected in str(error), (name, str(error))
        assert result.exit_code == 2, (name, result.output)
        assert result.stderr.strip() == f"nc-audit: error: {error}"  # the same refusal, word for word
        return
    assert library.passed is expected, (name, _library_checks(library))
    assert result.exit_code == (0 if expected else 1), (name, result.output)
    assert _cli_checks(out) == _library_checks(library)
    assert _library_checks(library), "a gating case must check something"


def test_gate_best_compares_with_the_record_the_same_gate_picks_in_the_baseline(tmp_path: Path) -> None:
    """Not the baseline's last record: b1 (accuracy 0.99, nc1 1e-6) is the reference, never b2."""
    run, baseline = _gate_run(tmp_path), _best_baseline(tmp_path)
    trajectory = nc_audit.measure_trajectory([run], device="cpu", gate="best", baseline=baseline)
    (check,) = [check for record in trajectory for check in record.checks]
    assert check.kind == "baseline" and check.baseline == 1e-6 and not check.passed


def test_measure_trajectory_holds_its_rules_and_leaves_the_other_checkpoints_unchecked(
    tmp_path: Path,
) -> None:
    run = _gate_run(tmp_path)
    trajectory = nc_audit.measure_trajectory([run], device="cpu", fail_on=["nc1<=1e-12"])
    assert not trajectory.passed and trajectory.gate == "last"
    assert [(record.gated, len(record.checks)) for record in trajectory] == [
        (False, 0),
        (False, 0),
        (True, 1),
    ]
    assert trajectory[-1].checks[0].kind == "threshold"


def test_measure_arrays_refuses_a_baseline_that_checks_nothing(tmp_path: Path) -> None:
    problem = collapsing_problem(0.4)
    with pytest.raises(InputError, match=r"bogus\.json: shares no metric value"):
        nc_audit.measure_arrays(
            problem.features, problem.labels, problem.W, problem.b, baseline=_foreign_baseline(tmp_path)
        )
    report = nc_audit.measure_arrays(problem.features, problem.labels, problem.W, np.asarray(problem.b))
    assert report.passed and report.checks == ()


def test_the_monitor_gates_each_record_as_track_gate_all_gates_its_file(tmp_path: Path) -> None:
    from nc_audit.measurement.monitor import Monitor

    with pytest.raises(InputError, match="did you mean 'mir'"):
        Monitor(tmp_path / "typo.jsonl", fail_on=["mirr>=0"])  # refused before training starts
    path = tmp_path / "run.jsonl"
    monitor = Monitor(path, every=1, label="run", fail_on=["nc1<=0.05"])
    for step, noise in enumerate((1.0, 0.1)):
        p = collapsing_problem(noise)
        monitor.log(step, *(torch.from_numpy(a) for a in (p.features, p.labels, p.W, p.b)))
    written = [(r["passed"], [c["name"] for c in r["checks"]]) for r in read_trajectory_jsonl(path)]
    assert written == [(False, ["nc1 <= 0.05"]), (True, ["nc1 <= 0.05"])]
    out = tmp_path / "t.json"
    result = invoke("track", path, "--gate", "all", "--fail-on", "nc1<=0.05", "--json", out)
    assert result.exit_code == 1, result.output
    assert [
        (r["passed"], [c["name"] for c in r["checks"]]) for r in json.loads(out.read_text())["records"]
    ] == written
