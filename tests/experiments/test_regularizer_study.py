"""`nc-audit study regularizer --quick` end to end (issue 22, item 2), and the study's plan and rendering."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nc_audit.cli import app
from nc_audit.experiments.studies.regularizer import RegularizerStudy, run_name, setting_name
from nc_audit.report.regularizer_study import plot_rows, regularizer_table
from nc_audit.report.tables_markdown import table_text

pytestmark = pytest.mark.usefixtures("one_thread", "isolated_cli")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_quick_study_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "reg"
    result = CliRunner().invoke(app, ["study", "regularizer", "--quick", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in lines] == [
        "[1/3] λ=0 none seed 0",
        "[2/3] λ=1 nc/detached seed 0",
        "[3/3] λ=1 max/trainable seed 0",
    ]
    document = json.loads((out / "results.json").read_text())
    assert document["kind"] == "regularizer"
    rows = {(row["lam"], row["setting"]): row for row in document["summary"]}
    assert set(rows) == {(0.0, "none"), (1.0, "nc/detached"), (1.0, "max/trainable")}
    # The regulariser changed the training: each form gives other weights, so other measurements.
    nc1 = {key: row["nc1"]["mean"] for key, row in rows.items()}
    assert len(set(nc1.values())) == 3
    for name in ("lam_0-seed_0", "lam_1-nc_detached-seed_0", "lam_1-max_trainable-seed_0"):
        assert (out / "runs" / f"{name}.pt").is_file()
    assert (out / "regularizer.png").read_bytes().startswith(PNG_MAGIC)
    page = (out / "RESULTS.md").read_text()
    assert "| 1 | max/trainable | 1 |" in page and "MIR_NC = 0.9524" in page
    assert "| λ | form |" in result.stdout


def test_the_plan_runs_lambda_zero_once_per_seed() -> None:
    study = RegularizerStudy()
    assert study.plan() == [(0.0, None, None), (0.1, "nc", "detached"), (0.1, "max", "trainable"),
                            (1.0, "nc", "detached"), (1.0, "max", "trainable")]  # fmt: skip
    assert len(study.plan()) * len(study.seeds) == 15
    assert setting_name(0.0, None, None) == "none"
    assert run_name(0.1, "nc", "detached", 2) == "lam_0.1-nc_detached-seed_2"


def test_table_escapes_setting_names_and_plot_lines_start_at_lambda_zero() -> None:
    stat = {"mean": 0.5, "std": 0.1, "n": 3}
    rows = [{"lam": 0.0, "setting": "none", "runs": 3, "nc1": stat},
            {"lam": 1.0, "setting": "nc|x", "runs": 3, "nc1": stat}]  # fmt: skip
    table = table_text(regularizer_table(rows))
    assert "nc\\|x" in table and "0.5000 ± 0.1000" in table
    lines = plot_rows(rows)
    assert [(row["lam"], row["form"]) for row in lines] == [(0.0, "nc|x"), (1.0, "nc|x")]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.pop("test"), "field 'test.accuracy' is missing"),
        (lambda r: r["train"]["metrics"].pop("h_head"), "field 'train.metrics.h_head' is missing"),
        (lambda r: r.__setitem__("lam", -1.0), "'lam' = -1 is negative"),
        (lambda r: r.__setitem__("setting", 3), "field 'setting' must be a string"),
    ],
)
def test_a_tampered_record_is_refused_on_resume(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    """A resumed regularizer study checks every record it reads back (one line, exit 2, no traceback)."""
    from nc_audit.core.errors import InputError
    from nc_audit.experiments.studies.record_checks import check_record

    stat = {"nc1": 0.1, "nc4": 0.0, "mir": 0.9, "hdr": 0.1, "h_head": 2.0}
    record: dict[str, Any] = {"key": "k", "lam": 1.0, "setting": "nc/detached", "seed": 0, "checkpoint": "x.pt",
              "train": {"accuracy": 1.0, "metrics": stat}, "test": {"accuracy": 0.9, "metrics": {}}}  # fmt: skip
    check_record(record, "regularizer", "runs.jsonl line 1")
    edit(record)
    with pytest.raises(InputError, match=message):
        check_record(record, "regularizer", "runs.jsonl line 1")
