"""The streaming passes keep a block's work on its device: no host reads inside the per-block loop, every
statistic float64 and on the requested device.

On CPU (always run) a :class:`device_watch.DeviceWatch` wraps ``Blockwise.update`` (one chunk: its
per-block loop) and records every operation that would make a GPU wait and copy device → host
(``.item()``/``int()``/``bool()``, data-dependent sizes, ``.tolist()``): the same calls a CUDA run would
make, so a planted ``.item()`` fails here without a GPU. The ``cuda`` tests (skipped without one; run by
``make gpu-check``) check the same on the device three ways: ``torch.cuda.set_sync_debug_mode("error")``
inside the per-block loop, the watch, and the profiler's count of device → host copies, which must not
grow with the number of blocks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DumpWriter, make_random_problem
from device_watch import DeviceWatch, watch_methods

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.progress import SilentTracker
from nc_audit.engine import decisions, passes, sample_stats
from nc_audit.engine.accumulators import WithinProjection
from nc_audit.engine.blocks import Blockwise
from nc_audit.engine.class_scatters import add_class_scatters
from nc_audit.engine.first_pass import ShiftedSums
from nc_audit.engine.passes import accumulate_stats, count_decisions
from nc_audit.engine.sample_stats import SampleLevelStats
from nc_audit.engine.second_pass import SecondPass
from nc_audit.io.dumps.reader import read_head, resolve_split
from nc_audit.metrics.collapse import centred_means
from nc_audit.metrics.sample_level import group_by_class

CPU = torch.device("cpu")
CHUNK = 64  # rows per chunk: a 1,000-row dump is ~16 chunks, each one call of Blockwise.update


def both_passes(
    dump: Path, device: torch.device, other_centre: bool = False
) -> tuple[ClassStats, SecondPass]:
    """Pass 1 (as measure runs it: no scatter), then pass 2 with the NC1 projection and the per-class
    sample-level scatters (centred on the pass's own mean, or on another one)."""
    info = resolve_split(dump, None)
    head = read_head(dump)
    stats = accumulate_stats(info, head.num_classes, device, SilentTracker(), CHUNK, with_scatter=False)
    projection = WithinProjection(stats.class_means, centred_means(stats.subset(stats.present)))
    centre = stats.global_mean + (0.5 if other_centre else 0.0)
    samples = SampleLevelStats(centre, stats.num_classes, device=device)
    second = count_decisions(info, stats, head, device, SilentTracker(), CHUNK, samples, projection)
    return stats, second


def chunks_of(dump: Path) -> int:
    """Calls of Blockwise.update in one pass over the dump (one per chunk of CHUNK rows)."""
    return -(-resolve_split(dump, None).num_samples // CHUNK)


@pytest.fixture
def dump(write_dump: DumpWriter) -> Path:
    """C = 7, d = 12, ~1,000 float32 rows with a head: ~16 chunks of 64 rows."""
    return write_dump(make_random_problem(seed=3), feature_dtype=np.float32)


@pytest.fixture
def device_split_scatters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-class scatters as on a GPU (sizes kept on the device), on CPU too."""
    monkeypatch.setattr(sample_stats, "HOST_SPLIT_DEVICES", ())


# --- CPU: the per-block loop reads nothing back ------------------------------------------------------------
@pytest.mark.usefixtures("device_split_scatters")
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("other_centre", [False, True], ids=["own-mean", "other-mean"])
def test_the_per_block_loops_read_nothing_back(
    dump: Path, monkeypatch: pytest.MonkeyPatch, workers: int, other_centre: bool
) -> None:
    """Both passes (NC4 decisions, NC1 projections, per-class sample-level scatters), with one and two
    worker threads: no host read in any of the ~2×16 calls of the per-block loop."""
    monkeypatch.setattr(passes, "worker_count", lambda device: workers)
    with watch_methods(monkeypatch, [(Blockwise, "update")]) as watch:
        both_passes(dump, CPU, other_centre)
    assert watch.calls >= 2 * chunks_of(dump) > 20  # the loops really ran under the watch, chunk by chunk
    assert watch.host_reads == []


@pytest.mark.parametrize("per_class", [False, True], ids=["one-shift", "per-class-shifts"])
def test_nan_rows_are_counted_without_reading_anything_back(
    monkeypatch: pytest.MonkeyPatch, per_class: bool
) -> None:
    """Blocks holding NaN/Inf rows take no host-side branch either (the old code read a flag per block to
    skip them): the rows are counted on the device and read once, after the pass."""
    generator = torch.Generator().manual_seed(0)
    H = torch.randn(300, 5, generator=generator, dtype=torch.float64) + 1e3  # (300, 5)
    y = torch.randint(3, (300,), generator=generator)  # (300,)
    H[[0, 7, 150], 2] = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=torch.float64)
    shifts = torch.full((3, 5), 1e3, dtype=torch.float64) if per_class else None
    accumulator = ShiftedSums(3, 5, CPU, with_scatter=True, shifts=shifts)
    with watch_methods(monkeypatch, [(Blockwise, "update")]) as watch:
        for begin in range(0, 300, 50):
            accumulator.update(H[begin : begin + 50], y[begin : begin + 50])
    assert watch.calls == 6 and watch.host_reads == []
    assert accumulator.nonfinite_rows == 3


def test_the_watch_sees_a_planted_item_in_the_per_block_loop(
    dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check can fail: one ``.item()`` per block (a planted bug) is recorded once per block."""
    original = ShiftedSums._update_block

    def planted(self: ShiftedSums, H: torch.Tensor, y: torch.Tensor) -> None:
        original(self, H, y)
        self.counts.sum().item()

    monkeypatch.setattr(ShiftedSums, "_update_block", planted)
    monkeypatch.setattr(passes, "worker_count", lambda device: 1)
    with watch_methods(monkeypatch, [(Blockwise, "update")]) as watch:
        info = resolve_split(dump, None)
        accumulate_stats(info, 7, CPU, SilentTracker(), CHUNK, with_scatter=False)
    assert watch.host_reads.count("_local_scalar_dense") == watch.calls > 1


def test_the_watch_sees_tolist_masks_and_bincount() -> None:
    """Each kind of host read the watch promises to see (module docstring of device_watch)."""
    watch = DeviceWatch()
    t = torch.arange(6)
    with watch.watching():
        int(t.sum()), bool(t.any()), t[t > 2], torch.bincount(t), torch.unique_consecutive(t), t.nonzero()
    assert watch.host_reads == [
        "_local_scalar_dense",
        "_local_scalar_dense",
        "index with a boolean mask",
        "bincount",
        "unique_consecutive",
        "nonzero",
    ]


# --- dtype rules ---------------------------------------------------------------------------------------------
def floating_states(accumulator: object) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of every floating-point tensor held by an accumulator and its parts (not its private
    work buffers, such as the float32 copy of a block's rows for the decision GEMM)."""
    for name, value in vars(accumulator).items():
        if name.startswith("_"):
            continue
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            yield name, value
        elif hasattr(value, "reductions"):  # a child accumulator
            yield from ((f"{name}.{inner}", tensor) for inner, tensor in floating_states(value))


@pytest.mark.usefixtures("device_split_scatters")
@pytest.mark.parametrize("float32", [False, True], ids=["float64-decisions", "float32-decisions"])
def test_statistics_and_every_gemm_of_the_passes_are_float64(
    dump: Path, monkeypatch: pytest.MonkeyPatch, float32: bool
) -> None:
    """The dump is float32; the design (docs/PERFORMANCE.md, docs/DESIGN.md) keeps every statistic float64:
    every GEMM in the per-block loops has float64 operands, except, on the float32 decision route, the
    decision GEMMs (their near-ties re-decided in float64: one float32 GEMM per block here, the class
    tile being the whole class set); every floating state of both passes and the ClassStats is float64."""
    monkeypatch.setattr(passes, "worker_count", lambda device: 1)
    monkeypatch.setattr(decisions, "float32_allowed", lambda device: float32)
    with watch_methods(monkeypatch, [(Blockwise, "update")]) as watch:
        stats, second = both_passes(dump, CPU)
    assert second.tables.float32 is float32
    assert {name for name, _ in watch.gemms} >= {"mm", "bmm"}  # the fused GEMM and the tile Grams
    single = [dtypes for _, dtypes in watch.gemms if set(dtypes) == {torch.float32}]
    assert len(single) == (chunks_of(dump) if float32 else 0), watch.gemms  # 1 block of 64 rows per chunk
    assert all(set(dtypes) in ({torch.float64}, {torch.float32}) for _, dtypes in watch.gemms), watch.gemms
    for field in dataclasses.fields(stats):
        value = getattr(stats, field.name)
        assert value is None or value.dtype == torch.float64, field.name
    for name, tensor in floating_states(second):
        assert tensor.dtype == torch.float64, name
    assert second.counter.decisions.dtype == torch.int64 and second.nonfinite.dtype == torch.int64


# --- per-class scatters with the sizes on the device --------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "C", "d", "tile"),
    [
        (1000, 7, 12, None),
        (5, 10, 3, None),
        (300, 3, 8, 1),
        (300, 3, 8, 7),
        (1, 1, 4, None),
        (2048, 100, 16, None),
    ],
)
def test_device_side_class_scatters_equal_the_host_split(n: int, C: int, d: int, tile: int | None) -> None:
    """add_class_scatters (padded tiles, one batched GEMM) equals one GEMM per class (group_by_class) to
    1e-14, with a class absent, more classes than rows, and one-row tiles; a scatter already holding a sum
    is added to, not overwritten."""
    generator = torch.Generator().manual_seed(n + C)
    y = torch.randint(max(1, C - 1), (n,), generator=generator)  # the last class is absent when C > 1
    Z = torch.randn(n, d, generator=generator, dtype=torch.float64)
    start = torch.randn(C, d, d, generator=generator, dtype=torch.float64)
    expected = start.clone()
    for c, rows in group_by_class(y):
        expected[c] += Z[rows].T @ Z[rows]
    actual = start.clone()
    add_class_scatters(actual, Z, y, tile)
    torch.testing.assert_close(actual, expected, rtol=1e-14, atol=1e-13)


def test_the_device_side_scatters_give_the_host_split_sums_through_the_pass(
    dump: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole second pass with the device-side route equals the CPU route (1e-13)."""
    _, host_route = both_passes(dump, CPU)
    monkeypatch.setattr(sample_stats, "HOST_SPLIT_DEVICES", ())
    _, device_route = both_passes(dump, CPU)
    torch.testing.assert_close(
        device_route.sample_stats.gram, host_route.sample_stats.gram, rtol=1e-13, atol=1e-13
    )
    assert torch.equal(device_route.sample_stats.counts, host_route.sample_stats.counts)


# --- CUDA ----------------------------------------------------------------------------------------------------
def tensors_of(accumulator: object) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of every tensor held by an accumulator and its parts."""
    for name, value in vars(accumulator).items():
        if isinstance(value, torch.Tensor):
            yield name, value
        elif hasattr(value, "reductions"):
            yield from ((f"{name}.{inner}", tensor) for inner, tensor in tensors_of(value))


@pytest.mark.cuda
@pytest.mark.usefixtures("device_split_scatters")
def test_cuda_every_state_and_result_lives_on_the_device(dump: Path, cuda_device: torch.device) -> None:
    """ClassStats and every tensor of the second pass (counter, projection, scatters, work buffers) are on
    the GPU, float64 where floating; the results agree with the CPU run (counts exactly, sums to 1e-12)."""
    stats, second = both_passes(dump, cuda_device)
    for field in dataclasses.fields(stats):
        value = getattr(stats, field.name)
        assert value is None or (value.device.type == cuda_device.type and value.dtype == torch.float64)
    placed = dict(tensors_of(second))
    assert {"counter.decisions", "projection.squared", "sample_stats.gram", "nonfinite"} <= set(placed)
    assert all(t.device.type == cuda_device.type for t in placed.values()), {
        k: t.device for k, t in placed.items()
    }
    decision_buffers = {"_x32", "_scratch"}  # float32 rows and scores of the float32 decision GEMM
    assert all(
        t.dtype == torch.float64
        for k, t in placed.items()
        if t.is_floating_point() and k not in decision_buffers
    )
    cpu_stats, cpu_second = both_passes(dump, CPU)
    assert torch.equal(stats.counts.cpu(), cpu_stats.counts)
    torch.testing.assert_close(stats.sums.cpu(), cpu_stats.sums, rtol=1e-12, atol=0)
    torch.testing.assert_close(stats.sq_dev.cpu(), cpu_stats.sq_dev, rtol=1e-12, atol=0)
    assert second.counter.decisions.tolist() == cpu_second.counter.decisions.tolist()
    torch.testing.assert_close(
        second.projection.squared.cpu(), cpu_second.projection.squared, rtol=1e-12, atol=0
    )
    torch.testing.assert_close(
        second.sample_stats.gram.cpu(), cpu_second.sample_stats.gram, rtol=1e-12, atol=1e-13
    )


@contextmanager
def synchronising_calls_raise(device: torch.device) -> Iterator[None]:
    """On CUDA: any synchronising call (``.item()``, a blocking copy, ``nonzero``, ``bincount``, ...) raises."""
    if device.type != "cuda":
        yield
        return
    before = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(before)


@pytest.mark.cuda
@pytest.mark.usefixtures("device_split_scatters")  # (for a dry run on CPU; the GPU uses this route anyway)
@pytest.mark.parametrize("other_centre", [False, True], ids=["own-mean", "other-mean"])
def test_cuda_per_block_loops_never_synchronise(
    dump: Path, monkeypatch: pytest.MonkeyPatch, cuda_device: torch.device, other_centre: bool
) -> None:
    """torch.cuda.set_sync_debug_mode("error") inside every call of the per-block loop (the block uploads
    are non-blocking and pass); the watch sees no host read either."""
    original = Blockwise.update

    def strict(self: Blockwise, features: torch.Tensor, labels: torch.Tensor) -> None:
        with synchronising_calls_raise(self.device):
            original(self, features, labels)

    monkeypatch.setattr(Blockwise, "update", strict)
    with watch_methods(monkeypatch, [(Blockwise, "update")]) as watch:
        both_passes(dump, cuda_device, other_centre)
    assert watch.calls >= 2 * chunks_of(dump) and watch.host_reads == []


@pytest.mark.cuda
def test_cuda_device_to_host_copies_do_not_grow_with_the_blocks(
    write_dump: DumpWriter, cuda_device: torch.device
) -> None:
    """The profiler's device → host memcpy events over both passes are the same for 4× the rows (4× the
    blocks): every read-back happens once per pass, none per block."""
    from torch.profiler import ProfilerActivity, profile

    small = make_random_problem(seed=4, sizes=(40, 60))
    large = dataclasses.replace(
        small, features=np.concatenate([small.features] * 4), labels=np.concatenate([small.labels] * 4)
    )
    both_passes(write_dump(small, "warm.h5"), cuda_device)  # warm-up: lazy CUDA initialisation, handles
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda_device.type == "cuda" else [])
    copies = []
    for problem, name in ((small, "small.h5"), (large, "large.h5")):
        path = write_dump(problem, name)
        with profile(activities=activities) as prof:
            both_passes(path, cuda_device)
            if cuda_device.type == "cuda":
                torch.cuda.synchronize()
        copies.append(sum(1 for event in prof.events() if "Memcpy DtoH" in event.name))
    assert copies[0] == copies[1], copies
    if cuda_device.type == "cuda":
        assert copies[0] > 0  # the profiler saw the copies of the final reads (the check can fail)
