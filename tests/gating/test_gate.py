"""Gate specification: rules, their evaluation, baselines, and project defaults from pyproject.toml."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from nc_audit.core.errors import InputError
from nc_audit.gating.baseline import Baseline, load_baseline
from nc_audit.gating.config import load_defaults
from nc_audit.gating.gate import gate
from nc_audit.gating.rules import Rule, evaluate_rules, parse_rule
from nc_audit.report.model import Trajectory

KEYS = [
    "nc1", "nc1_cdnv", "nc2_equinorm_means", "nc2_equinorm_head", "nc2_equiangular_means",
    "nc2_equiangular_head", "nc2_maxangle_means", "nc2_maxangle_head", "nc3", "nc4",
    "h_head", "h_means", "mi", "mir", "hdr",
]  # fmt: skip
MIR_NC_10 = 0.952351


def make_report(metrics: dict[str, float | None], num_classes: int = 10, **extra: Any) -> dict[str, Any]:
    """A minimal nc-audit-report/1 dict with targets at NC for C = 10."""
    targets = {key: 0.0 for key in KEYS}
    targets.update(h_head=math.log(9), h_means=math.log(9), mi=0.8, mir=MIR_NC_10)
    return {
        "schema": "nc-audit-report/1",
        "nc_audit_version": "0.1.0",
        "checkpoint": {"path": "ckpt.pt", "sha256": "ab" * 32, "head": "fc"},
        "features": {
            "path": "d.h5",
            "split": "train",
            "num_samples": 100,
            "feature_dim": 16,
            "num_classes": num_classes,
        },
        "conventions": {"global_mean": "sample-weighted"},
        "metrics": metrics,
        "targets": targets,
        "notes": [],
        "checks": [],
        "passed": True,
        **extra,
    }


def compare_to_baseline(
    current: dict[str, Any], baseline: dict[str, Any], tolerance: Any
) -> list[dict[str, Any]]:
    """The baseline checks of ``current`` (a report or trajectory dict), through the one gate (every record
    gated), each with the label of its record."""
    base = Baseline(Trajectory.from_dict(baseline, "baseline.json"), "baseline.json")
    run = Trajectory.from_dict(current, "run.json")
    gated = gate(run, (), base, tolerance, "last" if run.single else "all")
    return [{**check.to_dict(), "label": record.label} for record in gated for check in record.checks]


def evaluated(values: dict[str, Any], rules: list[Rule]) -> list[dict[str, Any]]:
    return [check.to_dict() for check in evaluate_rules(values, rules)]


# --- rules -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nc1<=0.5", Rule("nc1", "<=", 0.5)),
        ("mir >= 0.9", Rule("mir", ">=", 0.9)),
        ("hdr<0.1", Rule("hdr", "<", 0.1)),
        ("  nc4 >  1e-3 ", Rule("nc4", ">", 0.001)),
        ("nc3==0", Rule("nc3", "==", 0.0)),
        ("mi != -1.5", Rule("mi", "!=", -1.5)),
        ("NC1<=2", Rule("nc1", "<=", 2.0)),
    ],
)
def test_parse_rule_reads_every_operator_with_or_without_spaces(text: str, expected: Rule) -> None:
    assert parse_rule(text, KEYS) == expected


def test_rule_prints_as_metric_op_value() -> None:
    assert str(Rule("nc1", "<=", 0.5)) == "nc1 <= 0.5"
    assert str(parse_rule("mir>=0.952351", KEYS)) == "mir >= 0.952351"
    assert str(parse_rule("hdr<1", KEYS)) == "hdr < 1"


@pytest.mark.parametrize(
    "text", ["nc1", "nc1 <=", "<= 0.5", "nc1 =< 0.5", "nc1 <= abc", "nc1 <= 0.5 0.6", "", "nc1<=nan"]
)
def test_parse_rule_rejects_malformed_text_showing_the_expected_form(text: str) -> None:
    with pytest.raises(InputError, match="METRIC OP VALUE"):
        parse_rule(text, KEYS)


def test_unknown_metric_suggests_the_closest_and_lists_known_keys() -> None:
    with pytest.raises(InputError) as info:
        parse_rule("nc1_cdvn <= 0.2", KEYS)
    message = str(info.value)
    assert "unknown metric 'nc1_cdvn'" in message
    assert "did you mean 'nc1_cdnv'?" in message
    assert "nc2_maxangle_head" in message and "hdr" in message


# --- evaluation ----------------------------------------------------------------------------------------


def test_evaluate_rules_passes_and_fails_by_value() -> None:
    rules = [parse_rule(text, KEYS) for text in ("nc1<=0.5", "mir>=0.9", "hdr<0.1")]
    checks = evaluated({"nc1": 0.12, "mir": 0.85, "hdr": 0.1}, rules)
    assert [{key: check[key] for key in ("rule", "value", "passed")} for check in checks] == [
        {"rule": "nc1 <= 0.5", "value": 0.12, "passed": True},
        {"rule": "mir >= 0.9", "value": 0.85, "passed": False},
        {"rule": "hdr < 0.1", "value": 0.1, "passed": False},
    ]
    assert [(c["name"], c["metric"], c["op"], c["threshold"]) for c in checks] == [
        ("nc1 <= 0.5", "nc1", "<=", 0.5),
        ("mir >= 0.9", "mir", ">=", 0.9),
        ("hdr < 0.1", "hdr", "<", 0.1),
    ]
    assert [check.kind for check in evaluate_rules({"nc1": 0.12}, rules)] == ["threshold"] * 3


def test_undefined_or_missing_metric_fails_with_a_reason() -> None:
    rules = [parse_rule("mir>=0.5", KEYS), parse_rule("hdr<=1", KEYS), parse_rule("nc4<=1", KEYS)]
    checks = evaluated({"mir": None, "hdr": float("nan")}, rules)
    assert [c["passed"] for c in checks] == [False, False, False]
    assert [c["reason"] for c in checks] == ["undefined", "undefined", "not measured"]
    assert all(c["value"] is None for c in checks)
    json.dumps(checks, allow_nan=False)  # checks stay JSON-able


# --- baselines -------------------------------------------------------------------------------------------


def test_baseline_regression_fails_improvement_and_small_moves_pass() -> None:
    baseline = make_report({"nc1": 0.10, "mir": MIR_NC_10 - 0.012, "hdr": 0.05})
    current = make_report({"nc1": 0.30, "mir": MIR_NC_10 - 0.005, "hdr": 0.055})
    checks = {c["rule"].split(":")[0]: c for c in compare_to_baseline(current, baseline, tolerance=0.01)}
    assert checks["baseline nc1"]["passed"] is False  # moved 0.2 away from 0
    assert checks["baseline mir"]["passed"] is True  # moved towards MIR_NC(10)
    assert checks["baseline hdr"]["passed"] is True  # within tolerance
    assert checks["baseline nc1"]["value"] == 0.30 and checks["baseline nc1"]["baseline"] == 0.10
    assert checks["baseline mir"]["rule"] == "baseline mir: |Δ to NC| 0.012 → 0.005 (tol 0.01)"


def test_baseline_checks_have_a_name_without_values_and_the_numbers_beside_it() -> None:
    """CI test history keys on the name: it must not change when the measured values do."""
    baseline = make_report({"nc1": 0.10})
    names = set()
    for value in (0.05, 0.30):
        (check,) = compare_to_baseline(make_report({"nc1": value}), baseline, tolerance=0.01)
        names.add(check["name"])
        assert check["metric"] == "nc1" and check["target"] == 0.0 and check["tolerance"] == 0.01
        assert check["distance"] == pytest.approx(value) and check["baseline_distance"] == pytest.approx(0.10)
    assert names == {"baseline nc1"}


def test_mir_above_its_nc_value_counts_as_moving_away() -> None:
    baseline = make_report({"mir": MIR_NC_10})
    current = make_report({"mir": 1.0})  # higher, yet further from NC
    (check,) = compare_to_baseline(current, baseline, tolerance=0.01)
    assert check["passed"] is False


def test_per_metric_tolerance() -> None:
    baseline = make_report({"nc1": 0.10, "hdr": 0.05})
    current = make_report({"nc1": 0.30, "hdr": 0.20})
    checks = compare_to_baseline(current, baseline, tolerance={"nc1": 0.5, "*": 0.01})
    assert [c["passed"] for c in checks] == [True, False]


def test_metric_that_became_undefined_fails() -> None:
    (check,) = compare_to_baseline(make_report({"mir": None}), make_report({"mir": 0.9}), tolerance=1.0)
    assert check["passed"] is False and check["reason"] == "undefined"


def test_different_class_counts_are_refused() -> None:
    with pytest.raises(InputError, match="C = 100"):
        compare_to_baseline(make_report({"nc1": 0.1}), make_report({"nc1": 0.1}, num_classes=100), 0.0)


def test_trajectory_baselines_match_records_by_label() -> None:
    def traj(values: list[float], labels: list[str]) -> dict[str, Any]:
        records = [
            make_report({"nc1": v}, label=lab, step=i)
            for i, (v, lab) in enumerate(zip(values, labels, strict=True))
        ]
        return {"schema": "nc-audit-trajectory/1", "nc_audit_version": "0.1.0", "records": records}

    baseline = traj([0.5, 0.2], ["e1", "e2"])
    checks = compare_to_baseline(traj([0.9, 0.2, 0.1], ["e1", "e2", "e3"]), baseline, tolerance=0.1)
    assert [(c["label"], c["passed"]) for c in checks] == [("e1", False), ("e2", True)]
    # a single report is compared with the baseline trajectory's last record
    (single,) = compare_to_baseline(make_report({"nc1": 0.25}), baseline, tolerance=0.1)
    assert single["baseline"] == 0.2 and single["passed"] is True
    with pytest.raises(InputError, match="shares no checkpoint label"):
        compare_to_baseline(traj([0.1], ["other"]), baseline, tolerance=0.1)


def test_load_baseline_reads_reports_and_refuses_wrong_schema(tmp_path: Path) -> None:
    good = tmp_path / "base.json"
    good.write_text(json.dumps(make_report({"nc1": 0.1})))
    assert load_baseline(good).trajectory[0].metrics == {"nc1": 0.1}
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"schema": "nc-audit-features/1", "metrics": {}}))
    with pytest.raises(InputError, match=r"schema is 'nc-audit-features/1', expected 'nc-audit-report/1'"):
        load_baseline(wrong)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_baseline(broken)
    with pytest.raises(InputError, match="baseline not found"):
        load_baseline(tmp_path / "missing.json")
    empty_traj = tmp_path / "traj.json"
    empty_traj.write_text(json.dumps({"schema": "nc-audit-trajectory/1", "records": []}))
    with pytest.raises(InputError, match="non-empty 'records'"):
        load_baseline(empty_traj)


# --- pyproject defaults ----------------------------------------------------------------------------------


def test_defaults_come_from_the_nearest_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.nc-audit]\nfail-on = ["nc1<=0.5", "mir >= 0.9"]\n'
        'baseline = "reports/base.json"\ntolerance = 0.01\nformat = "markdown"\ndevice = "cuda:1"\n'
        'cache-dir = ".cache"\n'
    )
    nested = tmp_path / "src" / "pkg"
    nested.mkdir(parents=True)
    defaults = load_defaults(nested)
    assert defaults["fail_on"] == ["nc1<=0.5", "mir >= 0.9"]
    assert defaults["baseline"] == tmp_path / "reports" / "base.json"
    assert defaults["tolerance"] == 0.01
    assert defaults["format"] == "markdown" and defaults["device"] == "cuda:1"
    assert defaults["cache_dir"] == tmp_path / ".cache"
    assert defaults["config_path"] == tmp_path / "pyproject.toml"


def test_defaults_without_a_section_are_the_builtin_ones(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    defaults = load_defaults(tmp_path)
    assert defaults["fail_on"] == [] and defaults["baseline"] is None and defaults["format"] == "table"
    assert defaults["tolerance"] == 0.0 and defaults["device"] == "auto"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("fail_onn = []", "unknown key 'fail_onn'"),
        ('fail-on = "nc1<=0.5"\nfail_on = []', "set twice"),
        ("fail-on = [1, 2]", "list of rules"),
        ('tolerance = "small"', "tolerance must be a number"),
        ("tolerance = -0.1", "tolerance must be a number"),
        ('format = "html"', "expected one of table, json, markdown"),
        ('device = "gpu"', "expected auto, cpu, cuda"),
        ("baseline = 3", "expected a path"),
        ("format = [", "not valid TOML"),
    ],
)
def test_bad_config_names_the_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(f"[tool.nc-audit]\n{body}\n")
    with pytest.raises(InputError, match=message) as info:
        load_defaults(tmp_path)
    assert str(path) in str(info.value)


# --- which checkpoints a trajectory gates ---------------------------------------------------------------


def test_gated_indices_last_best_all() -> None:
    from nc_audit.gating.gate import gated_indices

    def records_of(dicts: list[dict[str, Any]]) -> Trajectory:
        return Trajectory.from_records(dicts, "run.jsonl")

    records = records_of([{"metrics": {"accuracy": a}} for a in (0.5, 0.9, 0.9, 0.7)])
    assert gated_indices(records, "last") == [3]
    assert gated_indices(records, "all") == [0, 1, 2, 3]
    assert gated_indices(records, "best") == [2]  # the highest accuracy; of equals, the later checkpoint
    with_details = records_of([{"metrics": {}, "details": {"accuracy": a}} for a in (0.8, 0.6)])
    assert gated_indices(with_details, "best") == [0]
    assert gated_indices([], "last") == []
    with pytest.raises(InputError, match="--gate best"):
        gated_indices(records_of([{"metrics": {"nc1": 1.0}}]), "best")
    with pytest.raises(InputError, match="unknown gate"):
        gated_indices(records, "first")


def test_gate_checks_only_the_gated_record_and_changes_nothing_it_was_given() -> None:
    trajectory = Trajectory.from_records(
        [{"metrics": {"nc1": 2.0}, "label": "e0"}, {"metrics": {"nc1": 0.1}, "label": "e9"}], "run.jsonl"
    )
    gated = gate(trajectory, [parse_rule("nc1<=0.5", KEYS)], None, 0.0, "last")
    data = gated.to_dict()
    assert [(r["gated"], r["passed"], len(r["checks"])) for r in data["records"]] == [
        (False, True, 0),
        (True, True, 1),
    ]
    assert data["passed"] is True and data["gate"] == "last"
    assert gate(trajectory, ["nc1<=0.5"], None, 0.0, "all").passed is False
    assert [record.checks for record in trajectory] == [(), ()] and trajectory.gate is None  # untouched
