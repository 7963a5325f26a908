"""`nc-audit study prune --quick` end to end (issue 22, "Done when": the pruning claim with std over seeds),
its resume (no retraining), and the checks of what a resume reads back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nc_audit.cli import app
from nc_audit.report.prune_seeds import prune_seeds_table
from nc_audit.report.tables_markdown import table_text

pytestmark = pytest.mark.usefixtures("one_thread", "isolated_cli")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _study(out: Path, *extra: str) -> Any:
    return CliRunner().invoke(app, ["study", "prune", "--quick", "--out", str(out), "--no-progress", *extra])


def test_quick_study_runs_end_to_end_and_resumes_without_training_again(tmp_path: Path) -> None:
    out = tmp_path / "prune"
    result = _study(out)
    assert result.exit_code == 0, result.output
    lines = [line.split(":")[0] for line in result.stderr.splitlines() if line.startswith("[")]
    assert lines == ["[1/2] seed 0 sparsity 0", "[2/2] seed 0 sparsity 0.8"]
    document = json.loads((out / "results.json").read_text())
    assert document["kind"] == "prune-seeds"
    rows = {row["sparsity"]: row for row in document["summary"]}
    assert set(rows) == {0.0, 0.8}
    assert rows[0.0]["kept"]["mean"] == 1.0 and rows[0.8]["kept"]["mean"] == pytest.approx(0.2, abs=0.01)
    assert rows[0.8]["nc1"]["mean"] > rows[0.0]["nc1"]["mean"]  # pruning 80 % of a 2-epoch MLP hurts
    trained = out / "runs" / "seed_0.pt"
    assert trained.is_file() and (out / "runs" / "seed_0" / "sparsity_0.800.pt").is_file()
    assert (out / "pruning_seeds.png").read_bytes().startswith(PNG_MAGIC)
    assert "| sparsity | seeds |" in result.stdout and "| 0.8 | 1 | 0.2" in (out / "RESULTS.md").read_text()

    # A killed study: the last record lost. --resume reads the first back, prunes the kept network again.
    runs = out / "runs.jsonl"
    runs.write_text(runs.read_text().splitlines(keepends=True)[0])
    stamp = trained.stat().st_mtime_ns
    again = _study(out, "--resume")
    assert again.exit_code == 0, again.output
    assert "[1/2] seed 0 sparsity 0: " in again.stderr and "read back from runs.jsonl" in again.stderr
    assert trained.stat().st_mtime_ns == stamp  # not trained again
    assert json.loads((out / "results.json").read_text())["summary"] == document["summary"]

    # Two records of one seed naming two networks (a tampered runs.jsonl): refused.
    kept_records = runs.read_text()
    first, second = (json.loads(line) for line in kept_records.splitlines())
    runs.write_text(json.dumps(first) + "\n" + json.dumps({**second, "trained": "00"}) + "\n")
    mixed = _study(out, "--resume")
    assert mixed.exit_code == 2 and "records of seed 0 name two different networks" in mixed.output
    runs.write_text(kept_records)

    # Another network in place of the kept one: refused, not reported as measured.
    trained.write_bytes((out / "runs" / "seed_0" / "sparsity_0.800.pt").read_bytes())
    refused = _study(out, "--resume")
    assert refused.exit_code == 2
    assert "seed_0.pt is not the network the records of seed 0 were measured on" in refused.output
    assert "Traceback" not in refused.output


def test_other_settings_are_refused_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "prune"
    assert _study(out, "--sparsities", "0").exit_code == 0
    result = _study(out, "--resume")
    assert result.exit_code == 2 and "settings differ" in result.output


def test_bad_sparsities_are_one_line_errors(tmp_path: Path) -> None:
    result = _study(tmp_path / "p", "--sparsities", "0,1")
    assert result.exit_code == 2 and "[0, 1)" in result.output and not (tmp_path / "p").exists()


def test_a_tampered_record_is_refused() -> None:
    from nc_audit.core.errors import InputError
    from nc_audit.experiments.studies.record_checks import check_record

    metrics = {"nc1": 0.1, "nc4": 0.0, "mir": 0.9, "hdr": 0.1}
    record: dict[str, Any] = {"key": "k", "seed": 0, "sparsity": 0.5, "kept": {"fraction": 0.5},
                              "checkpoint": "x.pt", "accuracy": 1.0, "test_accuracy": 0.9, "finetune_losses": [],
                              "trained": "ab", "report": {"metrics": metrics, "targets": {}, "features": {}}}  # fmt: skip
    check_record(record, "prune-seeds", "runs.jsonl line 1")
    for edit, message in (
        (lambda r: r.pop("trained"), "field 'trained' is missing"),
        (lambda r: r.__setitem__("seed", -1), "'seed' = -1 is negative"),
        (lambda r: r["report"]["metrics"].__setitem__("mir", 7.0), "'report.metrics.mir' = 7 lies outside"),
    ):
        broken = json.loads(json.dumps(record))
        edit(broken)
        with pytest.raises(InputError, match=message):
            check_record(broken, "prune-seeds", "runs.jsonl line 1")


def test_table_is_mean_and_std_and_escapes() -> None:
    stat = {"mean": 0.5, "std": 0.1, "n": 3}
    table = table_text(prune_seeds_table([{"sparsity": 0.9, "runs": 3, "nc1": stat, "hdr": {"mean": None}}]))
    assert "| 0.9 | 3 |" in table and "0.5000 ± 0.1000" in table
