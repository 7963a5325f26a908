"""Properties of the typed results (issue 20): any JSON a baseline or a monitor's .jsonl may hold is read
into typed reports or refused with an InputError (never another exception); what nc-audit writes reads
back to the same JSON; and the gate gives new objects, never changing the ones it was given."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nc_audit.core.errors import InputError
from nc_audit.gating.baseline import Baseline
from nc_audit.gating.gate import gate
from nc_audit.report.model import Report, Trajectory

KEYS = ("nc1", "mir", "accuracy")
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=False), st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
FIELDS = ("checkpoint", "features", "conventions", "metrics", "targets", "notes", "checks", "details", "step", "label", "gated")  # fmt: skip


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """A report record, each field either well-formed or any JSON value."""
    record: dict[str, Any] = {
        "schema": "nc-audit-report/1",
        "metrics": draw(st.dictionaries(st.sampled_from(KEYS), st.none() | st.floats(0, 1), max_size=3)),
        "targets": {"nc1": 0.0, "mir": 0.9},
        "label": draw(st.none() | st.text(max_size=6)),
        "step": draw(st.none() | st.integers(0, 9)),
    }
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        record[key] = draw(json_values)
    return record


@settings(max_examples=60, deadline=None)
@given(st.one_of(json_values, records(), st.builds(lambda r: {"schema": "nc-audit-trajectory/1", "records": r}, st.lists(records(), max_size=3))))  # fmt: skip
def test_any_json_is_read_or_refused_with_one_input_error(data: Any) -> None:
    try:
        trajectory = Trajectory.from_dict(data, "baseline.json")
    except InputError as error:
        assert str(error).startswith("baseline.json")
        return
    json.dumps(trajectory.to_dict(), allow_nan=False)  # what it holds can be written back as strict JSON
    for report in trajectory:
        assert all(value is None or isinstance(value, float) for value in report.metrics.values())


@settings(max_examples=40, deadline=None)
@given(st.lists(records(), min_size=1, max_size=4), st.lists(records(), min_size=1, max_size=3),
       st.sampled_from(["last", "best", "all"]))  # fmt: skip
def test_the_gate_reads_back_and_never_changes_what_it_was_given(
    run: list[dict[str, Any]], base: list[dict[str, Any]], which: str
) -> None:
    try:
        trajectory = Trajectory.from_records(run, "run.jsonl")
        baseline = Baseline(Trajectory.from_records(base, "baseline.json"), "baseline.json")
    except InputError:
        return
    before = (trajectory.to_dict(), baseline.trajectory.to_dict())
    try:
        gated = gate(trajectory, ["nc1<=0.5", "accuracy>=0.1"], baseline, 0.01, which)
    except InputError:
        return
    assert (trajectory.to_dict(), baseline.trajectory.to_dict()) == before
    data = gated.to_dict()
    again = Trajectory.from_dict(json.loads(json.dumps(data)), "again.json")
    assert [r.to_dict() for r in again] == [
        {k: v for k, v in r.items() if k != "gated"} for r in data["records"]
    ]
    assert data["passed"] == all(check["passed"] for record in data["records"] for check in record["checks"])
    assert sum(record["gated"] for record in data["records"]) == (len(run) if which == "all" else 1)
    assert isinstance(gated[0], Report)
