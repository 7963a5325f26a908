"""--decision-samples N: the decisions of a seeded random subset of rows (nc_audit/engine/decision_sample.py).

The subset depends on (rows, N, seed) only: the same for a seed whatever the chunking and worker count,
another for another seed; its counts equal a plain float64 count over exactly those rows; NC1's
projections still use every row; and the report names it in its conventions, in every format."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import DumpWriter, make_random_problem
from typer.testing import CliRunner

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.core.progress import SilentTracker
from nc_audit.engine import decision_sample, passes
from nc_audit.engine.accumulators import DecisionCounter, WithinProjection
from nc_audit.engine.decision_sample import DecisionSample
from nc_audit.engine.passes import accumulate_stats, count_decisions
from nc_audit.io.checkpoints.load import Head
from nc_audit.io.dumps.reader import resolve_split
from nc_audit.metrics.collapse import centred_means

CPU = torch.device("cpu")


def test_the_subset_is_a_function_of_rows_size_and_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sorted, distinct, in range, of the asked size; the same for a seed when the keys are drawn in
    other block sizes; another for another seed; None when N covers every row; N < 1 refused."""
    first = DecisionSample.draw(10_000, 300, seed=7)
    assert first is not None and first.size == 300 and first.total == 10_000
    assert np.all(np.diff(first.rows) > 0) and 0 <= first.rows[0] and first.rows[-1] < 10_000
    monkeypatch.setattr(decision_sample, "KEY_BLOCK", 999)  # the same key stream, cut elsewhere
    again = DecisionSample.draw(10_000, 300, seed=7)
    assert again is not None and np.array_equal(again.rows, first.rows)
    other = DecisionSample.draw(10_000, 300, seed=8)
    assert other is not None and not np.array_equal(other.rows, first.rows)
    assert DecisionSample.draw(10_000, 10_000) is None and DecisionSample.draw(10_000, None) is None
    assert np.array_equal(
        first.within(100, 5_000), first.rows[(first.rows >= 100) & (first.rows < 5_000)] - 100
    )
    with pytest.raises(InputError, match="at least 1"):
        DecisionSample.draw(10, 0)


@pytest.mark.parametrize(("workers", "chunk_rows"), [(1, 64), (2, 64), (2, 1000)])
def test_sampled_counts_equal_a_plain_count_over_the_subset(
    write_dump: DumpWriter, monkeypatch: pytest.MonkeyPatch, workers: int, chunk_rows: int
) -> None:
    problem = make_random_problem(seed=4, num_classes=6, feature_dim=10, sizes=(100, 300))
    info = resolve_split(write_dump(problem, feature_dtype=np.float32), None)
    head = Head("head", torch.from_numpy(problem.W), torch.from_numpy(problem.b))
    monkeypatch.setattr(passes, "worker_count", lambda device: workers)
    stats = accumulate_stats(info, head.num_classes, CPU, SilentTracker(), chunk_rows=chunk_rows)
    projection = WithinProjection(stats.class_means, centred_means(stats.subset(stats.present)))
    second = count_decisions(
        info,
        stats,
        head,
        CPU,
        SilentTracker(),
        chunk_rows,
        projection=projection,
        decision_samples=250,
        decision_seed=3,
    )
    rows = DecisionSample.draw(info.num_samples, 250, 3).rows  # type: ignore[union-attr]
    H = torch.from_numpy(problem.features.astype(np.float32)).double()
    y = torch.from_numpy(problem.labels)
    present = stats.present.nonzero().flatten()
    plain = DecisionCounter(stats.class_means[present], present, head.weight, head.bias)
    plain.update(H[rows], y[rows])
    counts = [second.counter.samples, second.counter.mismatches, second.counter.classifier_correct]
    assert counts == [plain.samples, plain.mismatches, plain.classifier_correct] and plain.samples == 250
    assert second.counter.subset == f"seeded random subset of 250 of {info.num_samples} rows (seed 3), " + (
        "NC1 and every other statistic from all rows"
    )
    assert second.projection.samples == info.num_samples  # NC1 from every row


def test_the_report_names_the_subset_in_every_format(write_dump: DumpWriter, tmp_path) -> None:  # type: ignore[no-untyped-def]
    problem = make_random_problem(seed=5)
    dump = write_dump(problem, feature_dtype=np.float32)
    markdown = tmp_path / "r.md"
    result = CliRunner().invoke(
        app,
        [
            "measure",
            str(dump),
            "--decision-samples",
            "100",
            "--format",
            "json",
            "--no-progress",
            "--markdown",
            str(markdown),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected = f"seeded random subset of 100 of {len(problem.labels)} rows (seed 0)"
    assert report["conventions"]["decisions"].startswith(expected)
    assert expected in markdown.read_text()
    table = CliRunner().invoke(app, ["measure", str(dump), "--decision-samples", "100", "--no-progress"])
    assert table.exit_code == 0 and expected in " ".join(table.stdout.split())
    plain = CliRunner().invoke(app, ["measure", str(dump), "--format", "json", "--no-progress"])
    assert "decisions" not in json.loads(plain.stdout)["conventions"]  # all rows: nothing to say
