"""Specification of `measure` under torchrun: 2 gloo ranks on CPU give one process's report.

Contract: ``python -m torch.distributed.run --nproc_per_node=2 --master_port=P -m nc_audit measure DUMP
--format json`` streams each rank's contiguous half of the rows, merges the ranks' ClassStats (Chan's
update, rank order), sums the NC4 counts (and the sample-level scatters), and prints, on rank 0 only,
the report of one process: metrics equal to 1e-12, everything else identical.

The engine's passes are also run directly under 2 gloo processes from torch.multiprocessing, merged
by the production path (reduce_over_ranks): the statistics equal the one-shot statistics of all rows
(1e-12) and are bitwise identical on both ranks, the context's collectives sum and gather, and the two
passes give the single-process metrics.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import free_port, make_random_problem
from gloo_ranks import CHILD_ENV, spawn_ranks
from reference import Problem
from typer.testing import CliRunner

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.progress import SilentTracker
from nc_audit.distributed import DistributedContext
from nc_audit.engine.accumulators import DecisionCounter
from nc_audit.engine.passes import accumulate_stats, count_decisions
from nc_audit.engine.state import reduce_over_ranks
from nc_audit.io.dumps.reader import read_head, resolve_split
from nc_audit.measurement.api import measure
from nc_audit.measurement.compute import compute_metrics

TOLERANCE = 1e-12
pytestmark = pytest.mark.distributed
RANKS = 2


def assert_same_report(ours: Any, theirs: Any, where: str = "report") -> None:
    """Equal structure and values; numbers to TOLERANCE (relative or absolute), the rest exactly."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and ours.keys() == theirs.keys(), f"{where}: keys differ"
        for key in theirs:
            assert_same_report(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), f"{where}: lengths differ"
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same_report(a, b, f"{where}[{index}]")
    elif isinstance(theirs, float) and not isinstance(ours, bool):
        assert isinstance(ours, (int, float)), f"{where}: {ours!r} vs {theirs!r}"
        assert ours == pytest.approx(theirs, rel=TOLERANCE, abs=TOLERANCE), f"{where}: {ours} vs {theirs}"
    else:
        assert ours == theirs, f"{where}: {ours!r} vs {theirs!r}"


# --- the CLI under torchrun (needs audit.collect wired to DistributedContext) --------------------------
RECORDER = textwrap.dedent(
    """
    # Runs `python -m nc_audit ARGS` and records which feature rows this rank read (h5py slices, or
    # the rows mapped straight from the file).
    import atexit, json, os, runpy, sys
    import h5py
    from nc_audit.io.hdf5.direct import DirectRows
    reads, original, original_direct = [], h5py.Dataset.__getitem__, DirectRows.read
    def recording(self, key):
        if self.name.endswith("/features") and isinstance(key, slice):
            reads.append([key.start or 0, key.stop if key.stop is not None else self.shape[0]])
        return original(self, key)
    def recording_direct(self, begin, end, out=None):
        reads.append([begin, end])
        return original_direct(self, begin, end, out)
    h5py.Dataset.__getitem__ = recording
    DirectRows.read = recording_direct
    log = os.path.join(os.environ["READS_DIR"], "rank%s.json" % os.environ["RANK"])
    atexit.register(lambda: open(log, "w").write(json.dumps(reads)))
    sys.argv = ["nc_audit", *sys.argv[1:]]
    runpy.run_module("nc_audit", run_name="__main__", alter_sys=True)
    """
)


def torchrun(target: list[str], args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """stdout of a 2-rank torchrun launch of ``target`` (['-m', 'nc_audit'] or [script]) with args."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={RANKS}",
               f"--master_port={free_port()}", "--master_addr=127.0.0.1", *target, *args]  # fmt: skip
    launch = subprocess.Popen(command, cwd=cwd, env=os.environ | CHILD_ENV | (env or {}), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = launch.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        launch.communicate()
        pytest.fail("torchrun did not finish within 180 s")
    assert launch.returncode == 0, stderr[-3000:]
    return stdout


def one_process(dump: Path, *extra: str) -> dict:
    result = CliRunner().invoke(app_for_measure(), ["measure", str(dump), "--format", "json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def app_for_measure() -> Any:
    from nc_audit.cli import app

    return app


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """C = 7, d = 12, N = 991, unbalanced classes, a biased head, float64 features."""
    import h5py

    problem = make_random_problem()
    path = tmp_path_factory.mktemp("dump") / "features.h5"
    with h5py.File(path, "w") as handle:
        handle["features"], handle["labels"] = problem.features, problem.labels
        handle["head/weight"], handle["head/bias"] = problem.W, problem.b
    return path


@pytest.mark.slow  # launches torchrun (2 ranks)
def test_torchrun_measure_prints_the_one_process_report_on_rank_0(dump: Path, tmp_path: Path) -> None:
    stdout = torchrun(["-m", "nc_audit"], ["measure", str(dump), "--format", "json"], cwd=tmp_path)
    report = json.loads(stdout)  # one JSON document: rank 1 printed nothing
    reference = one_process(dump)
    assert report["features"]["means_samples"] == 991  # the ranks' rows were merged once, not twice
    assert_same_report(report, reference)


@pytest.mark.slow  # launches torchrun (2 ranks)
def test_torchrun_measure_splits_the_rows_and_merges_sample_level_stats(dump: Path, tmp_path: Path) -> None:
    script = tmp_path / "record_reads.py"
    script.write_text(RECORDER)
    args = ["measure", str(dump), "--format", "json", "--sample-level", "--no-progress"]
    stdout = torchrun([str(script)], args, cwd=tmp_path, env={"READS_DIR": str(tmp_path)})
    assert_same_report(json.loads(stdout), one_process(dump, "--sample-level", "--no-progress"))
    shards = []
    for rank in range(RANKS):
        reads = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert reads, f"rank {rank} read no feature rows"
        shards.append((min(a for a, _ in reads), max(b for _, b in reads)))
    assert shards[0][0] == 0 and shards[-1][1] == 991, shards  # together: every row
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(shards)), shards  # disjoint, in order


# --- the engine under 2 gloo processes, through the production merge path ------------------------------
def split_problem() -> Problem:
    """C = 5, d = 6, unbalanced; class 4 only in the first half of the rows (so only in rank 0's share)."""
    problem = make_random_problem(seed=3, num_classes=5, feature_dim=6, sizes=(30, 90))
    labels = problem.labels.copy()
    second_half = labels[labels.shape[0] // 2 :]
    second_half[second_half == 4] = 3
    return Problem(problem.features, labels, problem.W, problem.b)


def _worker(rank: int, port: int, out: str, dump: str) -> None:
    """One rank: both passes of a measurement on its contiguous rows, merged by the engine
    (reduce_over_ranks), plus the context's own collectives."""
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                   "LOCAL_RANK": str(rank), "WORLD_SIZE": str(RANKS)}  # fmt: skip
    torch.set_num_threads(1)
    from datetime import timedelta

    cpu = torch.device("cpu")
    ctx = DistributedContext.from_env("cpu", timeout=timedelta(seconds=60))
    split = resolve_split(Path(dump).with_name("split.h5"), None)
    rows = ctx.row_range(split.num_samples)
    merged = accumulate_stats(split, 5, cpu, SilentTracker(), chunk_rows=37, ctx=ctx)  # several chunks
    lean = accumulate_stats(split, 5, cpu, SilentTracker(), chunk_rows=37, with_scatter=False, ctx=ctx)
    counts = torch.tensor([rank + 1, 10 * rank], dtype=torch.int64)
    summed = ctx.all_reduce_sum(counts)
    strided = torch.arange(6, dtype=torch.float64).reshape(2, 3).T * (rank + 1)  # non-contiguous view
    summed_strided = ctx.all_reduce_sum(strided)
    gathered = ctx.gather_rows(torch.full((rank + 2, 3), float(rank)))  # unequal shares

    info = resolve_split(dump, None)  # the two passes as collect() runs them
    head = read_head(dump)
    stats = accumulate_stats(info, head.num_classes, cpu, SilentTracker(), chunk_rows=100, ctx=ctx)
    second = count_decisions(info, stats, head, cpu, SilentTracker(), 100, ctx=ctx)
    metrics = compute_metrics(stats, head, second.counter)
    collapsed = resolve_split(Path(dump).with_name("collapsed.h5"), None)  # the first pass runs twice
    exact = accumulate_stats(collapsed, 4, cpu, SilentTracker(), chunk_rows=64, ctx=ctx)
    ctx.close()
    torch.save({"world": (ctx.rank, ctx.world_size, ctx.is_main), "rows": rows, "merged": merged,
                "lean": lean, "counts": counts, "summed": summed, "strided": summed_strided,
                "gathered": gathered, "metrics": metrics, "exact": exact}, Path(out) / f"rank{rank}.pt")  # fmt: skip


def write_problem(path: Path, problem: Problem) -> Path:
    """A minimal dump (/features, /labels) of ``problem``."""
    import h5py

    with h5py.File(path, "w") as handle:
        handle["features"], handle["labels"] = problem.features, problem.labels
    return path


def nearly_collapsed_dump(path: Path) -> Path:
    """C = 4 classes ~1 apart with a spread of 1e-7: one shift would lose σ², so the pass re-runs."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(7)
    y = rng.integers(0, 4, size=900)
    H = (3.0 + rng.normal(size=(4, 10)))[y] + 1e-7 * rng.normal(size=(900, 10))
    with h5py.File(path, "w") as handle:
        handle["features"], handle["labels"] = H, y
    return path


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory, dump: Path) -> list[dict]:
    nearly_collapsed_dump(dump.with_name("collapsed.h5"))
    write_problem(dump.with_name("split.h5"), split_problem())
    out = tmp_path_factory.mktemp("ranks")
    spawn_ranks(_worker, (free_port(), str(out), str(dump)), RANKS)
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(RANKS)]


def stat_fields(stats: ClassStats) -> dict[str, torch.Tensor]:
    """The tensors a ClassStats carries (the within-class scatter may be None: skipped)."""
    return {f.name: getattr(stats, f.name) for f in fields(stats) if getattr(stats, f.name) is not None}


@pytest.mark.parametrize("kind", ["merged", "lean"])
def test_merged_stats_equal_one_shot_stats_and_are_identical_on_every_rank(
    ranks: list[dict], kind: str
) -> None:
    """The first pass under 2 ranks (with and without the d×d scatter) equals the one-shot statistics of
    all rows, class 4 seen by rank 0 only, and both ranks hold bitwise the same result (rank order)."""
    problem = split_problem()
    H, y = torch.from_numpy(problem.features), torch.from_numpy(problem.labels)
    one_shot = stat_fields(ClassStats.from_batch(H, y, 5, with_scatter=kind == "merged"))
    for rank in ranks:
        merged = stat_fields(rank[kind])
        assert merged.keys() == one_shot.keys()
        for name, expected in one_shot.items():
            torch.testing.assert_close(merged[name], expected, rtol=TOLERANCE, atol=TOLERANCE)
    for name, tensor in stat_fields(ranks[0][kind]).items():
        assert torch.equal(tensor, stat_fields(ranks[1][kind])[name]), name


def test_context_knows_its_rank_and_shards_rows_contiguously(ranks: list[dict]) -> None:
    assert [r["world"] for r in ranks] == [(0, 2, True), (1, 2, False)]
    (a, b), (c, d) = ranks[0]["rows"], ranks[1]["rows"]
    assert a == 0 and b == c and d == ranks[0]["merged"].num_samples and abs((b - a) - (d - c)) <= 1


def test_all_reduce_sum_and_gather_rows_on_every_rank(ranks: list[dict]) -> None:
    expected = torch.arange(6, dtype=torch.float64).reshape(2, 3).T * 3
    for rank, result in enumerate(ranks):
        assert result["summed"].tolist() == [3, 10]
        assert result["counts"].tolist() == [rank + 1, 10 * rank]  # the input is left as it was
        torch.testing.assert_close(result["strided"], expected, rtol=0, atol=0)
        assert result["gathered"].tolist() == [[0.0] * 3] * 2 + [[1.0] * 3] * 3  # rank order, unequal shares


def test_first_pass_rerun_under_two_ranks_equals_one_process(ranks: list[dict], dump: Path) -> None:
    """Nearly collapsed classes: both ranks decide to re-run with per-class centring (the decision is
    taken on merged sums) and get the one-process statistics, σ² included, to 1e-12."""
    info = resolve_split(dump.with_name("collapsed.h5"), None)
    one = accumulate_stats(info, 4, torch.device("cpu"), SilentTracker(), chunk_rows=64)
    for rank in ranks:
        for name, value in stat_fields(one).items():
            torch.testing.assert_close(getattr(rank["exact"], name), value, rtol=1e-12, atol=0)
    assert float(one.sq_dev.min()) > 0  # σ² survived: ~90 rows · 10 dims · 1e-14 each


def test_hand_wired_two_passes_give_the_one_process_metrics(ranks: list[dict], dump: Path) -> None:
    reference = measure(dump, device="cpu").metrics
    for rank in ranks:
        assert rank["metrics"].keys() == reference.keys()
        for key, value in reference.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                assert rank["metrics"][key] is None or math.isnan(rank["metrics"][key]), key
            else:
                assert rank["metrics"][key] == pytest.approx(value, rel=TOLERANCE, abs=TOLERANCE), key


# --- one process: no torch.distributed at all -------------------------------------------------------
def test_single_process_context_is_a_no_op(monkeypatch: pytest.MonkeyPatch, random_problem: Problem) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = DistributedContext.from_env("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    assert ctx.row_range(991) == (0, 991) and ctx.row_range(0) == (0, 0)
    counter = DecisionCounter(torch.zeros(2, 3), torch.arange(2), torch.zeros(2, 3), None, samples=4)
    assert reduce_over_ranks(counter, ctx) is counter
    counts = torch.tensor([1, 2])
    assert ctx.all_reduce_sum(counts).tolist() == [1, 2]
    assert ctx.gather_rows(counts) is counts
    ctx.close()
    with pytest.raises(RuntimeError, match="closed"):
        ctx.all_reduce_sum(counts)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert DistributedContext.from_env("cpu").world_size == 1


@pytest.mark.parametrize("world", [1, 2, 3, 7])
@pytest.mark.parametrize("num_rows", [0, 1, 5, 991])
def test_row_ranges_tile_the_rows_in_order_and_balanced(world: int, num_rows: int) -> None:
    slices = [DistributedContext(rank, world).row_range(num_rows) for rank in range(world)]
    assert slices[0][0] == 0 and slices[-1][1] == num_rows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(slices))
    sizes = [stop - start for start, stop in slices]
    assert max(sizes) - min(sizes) <= 1


def test_bad_environment_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from nc_audit.core.errors import InputError

    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InputError, match="WORLD_SIZE='two' is not an integer"):
        DistributedContext.from_env("cpu")
