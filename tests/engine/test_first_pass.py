"""The fused first pass (ShiftedSums, RoundRobin workers, accumulate_stats) against a float64 NumPy reference.

ShiftedSums accumulates about per-class shifts and recovers the centred statistics at the end; the
reference here centres each class on its explicitly computed mean, so any cancellation in the shifted
formulas (a bad shift, a naive E[x²] − E[x]²) shows up as a relative error far above 1e-12.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from nc_audit.core.class_stats import ClassStats
from nc_audit.core.errors import InputError
from nc_audit.core.progress import SilentTracker
from nc_audit.core.threads import single_threaded_kernels, worker_count
from nc_audit.engine.first_pass import ShiftedSums
from nc_audit.engine.passes import accumulate_stats
from nc_audit.engine.state import merge, pack, unpack
from nc_audit.engine.workers import RoundRobin
from nc_audit.io.dumps.reader import resolve_split

TIGHT = 1e-12
CPU = torch.device("cpu")
UNEVEN = (1, 7, 513, 2000)  # chunk sizes, cycled until the stream ends


# --- the reference -----------------------------------------------------------------------------------------
def reference(H: np.ndarray, y: np.ndarray, C: int) -> dict[str, np.ndarray]:
    """counts, sums, sq_dev, scatter in float64 from explicit per-class means (absent classes: zeros)."""
    H = np.asarray(H, dtype=np.float64)  # (N, d)
    d = H.shape[1]
    counts = np.bincount(y, minlength=C).astype(np.float64)  # (C,)
    sums = np.zeros((C, d))  # (C, d)
    means = np.zeros((C, d))  # (C, d)
    for c in range(C):
        if counts[c]:
            sums[c] = H[y == c].sum(0)
            means[c] = H[y == c].mean(0)
    D = H - means[y]  # (N, d) centred on the class means
    sq_dev = np.array([np.sum(D[y == c] ** 2) for c in range(C)])  # (C,)
    return {"counts": counts, "sums": sums, "sq_dev": sq_dev, "scatter": D.T @ D}


def relative_error(actual: torch.Tensor | np.ndarray, expected: np.ndarray) -> float:
    """max |actual − expected| / max |expected| (normwise)."""
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape
    scale = np.abs(e).max()
    return float(np.abs(a - e).max() / scale) if scale > 0 else float(np.abs(a).max())


def assert_matches(stats: ClassStats, expected: dict[str, np.ndarray], with_scatter: bool = True) -> None:
    """Counts exactly, sums/sq_dev/scatter to 1e-12 normwise, all float64."""
    np.testing.assert_array_equal(stats.counts.numpy(), expected["counts"])
    names = ("sums", "sq_dev", "scatter") if with_scatter else ("sums", "sq_dev")
    for name in names:
        value = getattr(stats, name)
        assert value.dtype == torch.float64, name
        error = relative_error(value, expected[name])
        assert error <= TIGHT, (name, error)
    if not with_scatter:
        assert stats.scatter is None


# --- data ----------------------------------------------------------------------------------------------------
def make_stream(
    seed: int,
    n: int = 3000,
    d: int = 24,
    C: int = 6,
    offset: float = 1e4,
    spread: float = 1e-2,
    late_class: int = 3,
    late_after: int = 500,
    absent_class: int | None = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """Unbalanced labels (class ``late_class`` only after row ``late_after``, ``absent_class`` never), and
    float64 features = offset + class centre (~spread) + noise (~spread, per-dimension scale)."""
    rng = np.random.default_rng(seed)
    present = [c for c in range(C) if c != absent_class]
    weights = rng.uniform(0.2, 1.0, size=len(present))
    y = rng.choice(present, size=n, p=weights / weights.sum())  # (n,)
    early = y[:late_after] == late_class
    y[:late_after][early] = next(c for c in present if c != late_class)
    centres = spread * 3.0 * rng.normal(size=(C, d))  # (C, d)
    H = offset + centres[y] + spread * rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d)  # (n, d)
    return H, y.astype(np.int64)


def chunk_slices(n: int, sizes: Sequence[int] | None) -> Iterator[slice]:
    """Row slices covering 0..n, with lengths cycling through ``sizes`` (None: one chunk)."""
    if sizes is None:
        yield slice(0, n)
        return
    begin, index = 0, 0
    while begin < n:
        end = min(n, begin + sizes[index % len(sizes)])
        yield slice(begin, end)
        begin, index = end, index + 1


def shifted_sums_of(
    H: np.ndarray, y: np.ndarray, C: int, sizes: Sequence[int] | None, with_scatter: bool = True
) -> ShiftedSums:
    accumulator = ShiftedSums(C, H.shape[1], CPU, with_scatter)
    for rows in chunk_slices(len(y), sizes):
        accumulator.update(torch.from_numpy(H[rows]), torch.from_numpy(y[rows]))
    return accumulator


# --- ShiftedSums against the reference ----------------------------------------------------------------------
DTYPE_CASES = {  # the largest offset each dtype resolves usefully, with a spread ≪ offset
    "float64": (np.float64, 1e4, 1e-2),
    "float32": (np.float32, 1e4, 1e-2),
    "float16": (np.float16, 1e3, 4.0),
}


@pytest.mark.parametrize(
    "sizes", [None, UNEVEN, (2000, 513, 7, 1)], ids=["one-chunk", "1-7-513-2000", "2000-513-7-1"]
)
@pytest.mark.parametrize("dtype_name", list(DTYPE_CASES))
def test_shifted_sums_match_reference_with_offset_late_and_absent_classes(
    dtype_name: str, sizes: Sequence[int] | None
) -> None:
    """Counts, sums, sq_dev and scatter equal the centred reference to 1e-12 for float16/32/64 input with
    a large common offset, a class first seen after row 500 and a class never seen, however the stream is
    cut; the absent class has exact zeros."""
    dtype, offset, spread = DTYPE_CASES[dtype_name]
    H64, y = make_stream(seed=11, offset=offset, spread=spread)
    H = H64.astype(dtype)  # as stored; the reference reads the same values
    C = 6
    assert (
        3 not in y[:500] and 3 in y[500:] and 5 not in y
    )  # the stream really has a late and an absent class
    expected = reference(H, y, C)
    stats = shifted_sums_of(H, y, C, sizes).class_stats()
    assert_matches(stats, expected)
    assert float(stats.counts[5]) == 0.0 and float(stats.sq_dev[5]) == 0.0
    assert bool((stats.sums[5] == 0).all())


def test_the_offset_data_defeats_the_naive_formula() -> None:
    """Sanity check of the test data: Σ‖h‖² − n‖μ‖² in float64 misses sq_dev by far more than 1e-12,
    so the 1e-12 agreement above really tests the shifted accumulation."""
    H, y = make_stream(seed=11)
    expected = reference(H, y, 6)
    naive = np.array(
        [np.sum(H[y == c] ** 2) - np.sum(H[y == c].sum(0) ** 2) / max(1, (y == c).sum()) for c in range(6)]
    )
    assert relative_error(naive, expected["sq_dev"]) > 1e-6


def test_shifted_sums_across_internal_blocks() -> None:
    """With d = 700 one update() spans several internal blocks (ShiftedSums.rows_per_block rows each); a class
    first appearing in a later block of the same call still matches the reference to 1e-12."""
    C, d = 5, 700
    H, y = make_stream(seed=5, n=2500, d=d, C=C, late_class=2, late_after=1500, absent_class=None)
    accumulator = ShiftedSums(C, d, CPU)
    assert accumulator.rows_per_block < 1500  # class 2 first shows up in a later block
    accumulator.update(torch.from_numpy(H), torch.from_numpy(y))
    assert_matches(accumulator.class_stats(), reference(H, y, C))


def test_without_scatter_same_counts_sums_sq_dev() -> None:
    """with_scatter=False leaves scatter None and gives bitwise the same counts, sums and sq_dev."""
    H, y = make_stream(seed=3)
    full = shifted_sums_of(H, y, 6, UNEVEN, with_scatter=True).class_stats()
    lean = shifted_sums_of(H, y, 6, UNEVEN, with_scatter=False).class_stats()
    assert lean.scatter is None and full.scatter is not None
    for name in ("counts", "sums", "sq_dev"):
        assert torch.equal(getattr(full, name), getattr(lean, name)), name
    assert_matches(lean, reference(H, y, 6), with_scatter=False)


# --- NaN / Inf rows -----------------------------------------------------------------------------------------
def poisoned_stream(seed: int = 21) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The offset stream with NaN/±Inf in the first three rows of class 2 and in a few rows elsewhere.
    Returns features, labels and the indices of the bad rows."""
    H, y = make_stream(seed=seed)
    first_of_class_2 = np.flatnonzero(y == 2)[:3]
    elsewhere = np.array([40, 41, 777, 1999, len(y) - 1])
    bad = np.unique(np.concatenate([first_of_class_2, elsewhere]))
    H[first_of_class_2[0], 3] = np.nan
    H[first_of_class_2[1], :] = np.inf
    H[first_of_class_2[2], 0] = -np.inf
    H[40, 5] = np.nan
    H[41, [1, 2]] = [np.inf, np.nan]
    H[777, -1] = -np.inf
    H[1999, 0] = np.nan
    H[len(y) - 1, 7] = np.inf
    return H, y, bad


@pytest.mark.parametrize("sizes", [None, UNEVEN, (64,)], ids=["one-chunk", "1-7-513-2000", "64"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_rows_are_counted_exactly(dtype: type, sizes: Sequence[int] | None) -> None:
    """nonfinite_rows is the exact number of rows holding a NaN or ±Inf, however the stream is cut."""
    H, y, bad = poisoned_stream()
    accumulator = shifted_sums_of(H.astype(dtype), y, 6, sizes)
    assert len(bad) == 8
    assert accumulator.nonfinite_rows == len(bad)


def test_the_shift_is_the_mean_of_the_first_blocks_finite_rows() -> None:
    """The first chunk holds NaN/Inf rows (40, 41): the single shift g is the mean of its finite rows
    (a NaN shift would make every later sum NaN, a zero shift would cancel the 1e4 offset), and the bad
    rows are counted exactly. The NaN rows are not skipped but only counted (no host read per block); the
    pass fails on them (test_accumulate_stats_reports_the_exact_nonfinite_count), so the sums they spoil are never used."""
    H, y, bad = poisoned_stream()
    accumulator = shifted_sums_of(H, y, 6, (64,))
    first = H[:64]
    finite = np.isfinite(first).all(1)
    assert not finite.all() and finite.sum() > 50
    np.testing.assert_allclose(accumulator.shifts[0].numpy(), first[finite].mean(0), rtol=1e-14)
    assert bool(accumulator.shifted.all())
    assert accumulator.nonfinite_rows == len(bad)
    assert accumulator.nonfinite.dtype == torch.int64 and accumulator.nonfinite.ndim == 0


# --- accumulate_stats over a dump ---------------------------------------------------------------------------
def write_dump(path: Path, H: np.ndarray, y: np.ndarray) -> Path:
    with h5py.File(path, "w") as handle:
        handle["features"] = H
        handle["labels"] = y
    return path


def stats_with_threads(
    path: Path, threads: int, chunk_rows: int = 64, with_scatter: bool = True
) -> ClassStats:
    """accumulate_stats under torch.set_num_threads(threads), restoring the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        stats = accumulate_stats(
            resolve_split(path, None),
            6,
            CPU,
            SilentTracker(),
            chunk_rows=chunk_rows,
            with_scatter=with_scatter,
        )
        assert torch.get_num_threads() == threads  # the pass restores the caller's thread count
        return stats
    finally:
        torch.set_num_threads(before)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@pytest.fixture
def offset_dump(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A float32 dump of 2,000 × 24 rows, 6 classes (one absent, one late), offset 1e4, spread 1e-2."""
    H, y = make_stream(seed=31, n=2000)
    H = H.astype(np.float32)
    return write_dump(tmp_path / "offset.h5", H, y), H, y


@pytest.fixture
def plain_dump(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A float32 dump of 2,000 × 24 rows, 6 classes (one absent, one late), offset 4, spread 1."""
    H, y = make_stream(seed=32, n=2000, offset=4.0, spread=1.0)
    H = H.astype(np.float32)
    return write_dump(tmp_path / "plain.h5", H, y), H, y


def set_threads_and_count_workers(threads: int) -> int:
    """worker_count(cpu) under torch.set_num_threads(threads), restoring the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return worker_count(CPU)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
def test_accumulate_stats_matches_reference(
    plain_dump: tuple[Path, np.ndarray, np.ndarray], threads: int
) -> None:
    """accumulate_stats (64-row chunks, so ~32 chunks round-robin over the workers) equals the reference
    to 1e-12 with 1 and with 2 PyTorch threads (2 threads: 2 worker accumulators, merged at the end)."""
    path, H, y = plain_dump
    if threads == 2 and usable_cores() < 2:
        pytest.skip("needs 2 usable cores for 2 workers")
    assert set_threads_and_count_workers(threads) == threads
    assert_matches(stats_with_threads(path, threads), reference(H, y, 6))


@pytest.mark.parametrize("threads", [1, 2])
def test_accumulate_stats_keeps_shifted_precision_whatever_the_worker_count(
    tmp_path: Path, threads: int
) -> None:
    """float64 features with offset 1e6 and spread 1e-3: one ShiftedSums gets sq_dev and scatter to ~2e-13
    of the reference, and merging the accumulators of 2 workers must not give that precision away (the
    result must not depend on the thread count beyond 1e-12)."""
    if threads == 2 and usable_cores() < 2:
        pytest.skip("needs 2 usable cores for 2 workers")
    H, y = make_stream(seed=31, n=2000, offset=1e6, spread=1e-3)
    path = write_dump(tmp_path / "far.h5", H, y)
    assert set_threads_and_count_workers(threads) == threads
    assert_matches(stats_with_threads(path, threads), reference(H, y, 6))


def test_accumulate_stats_is_deterministic_and_scatter_free_pass_agrees(
    offset_dump: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    """Two 2-thread runs are bitwise identical; with_scatter=False gives bitwise the same counts/sums/sq_dev."""
    path, _, _ = offset_dump
    first, second = stats_with_threads(path, 2), stats_with_threads(path, 2)
    lean = stats_with_threads(path, 2, with_scatter=False)
    for name in ("counts", "sums", "sq_dev", "scatter"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert lean.scatter is None
    for name in ("counts", "sums", "sq_dev"):
        assert torch.equal(getattr(first, name), getattr(lean, name)), name


@pytest.mark.parametrize("threads", [1, 2])
def test_accumulate_stats_reports_the_exact_nonfinite_count(tmp_path: Path, threads: int) -> None:
    """A dump with 8 NaN/Inf rows out of 3,000 fails with 'K of N feature rows hold NaN or Inf' (K = 8)."""
    H, y, bad = poisoned_stream()
    path = write_dump(tmp_path / "nan.h5", H.astype(np.float32), y)
    with pytest.raises(InputError, match=rf"\b{len(bad)} of {len(y)} feature rows hold NaN or Inf"):
        stats_with_threads(path, threads)


# --- RoundRobin and single_threaded_kernels ----------------------------------------------------------------
def run_in_thread(body: Callable[[], None], timeout: float = 10.0) -> BaseException | None:
    """Run ``body`` on a fresh thread (so a deadlock fails the test instead of hanging it); its exception."""
    caught: list[BaseException] = []

    def target() -> None:
        try:
            body()
        except BaseException as error:
            caught.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "RoundRobin deadlocked"
    return caught[0] if caught else None


@pytest.mark.parametrize("failing_item", [3, 39])
def test_round_robin_handler_exception_reaches_the_calling_thread(failing_item: int) -> None:
    """The second of 2 handlers (odd items) raises, early or on the very last item (then only __exit__ can
    raise it): the exception propagates out of the `with` block on the thread that entered it, and the
    workers stop (no deadlock)."""
    calling: list[threading.Thread] = []
    reached_end: list[bool] = []

    def fine(item: int) -> None:
        pass

    def failing(item: int) -> None:
        if item == failing_item:
            raise ValueError(f"boom {item}")

    def body() -> None:
        calling.append(threading.current_thread())
        with RoundRobin([fine, failing]) as pool:
            for item in range(40):
                pool.submit(item)
            reached_end.append(True)
        reached_end.append(False)  # not reached: __exit__ must raise if submit did not

    error = run_in_thread(body)
    assert isinstance(error, ValueError) and str(error) == f"boom {failing_item}"
    assert False not in reached_end
    assert calling and calling[0] is not threading.current_thread()


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_round_robin_sends_item_i_to_handler_i_mod_w_in_order(workers: int) -> None:
    """Handler k receives exactly items k, k+W, k+2W, ... in submission order, each handler on one thread of
    its own (W > 1) with single-threaded kernels, or inline on the calling thread (W = 1); the calling
    thread's PyTorch thread count is left as it was."""
    received: list[list[int]] = [[] for _ in range(workers)]
    threads: list[set[int]] = [set() for _ in range(workers)]
    kernel_threads: list[set[int]] = [set() for _ in range(workers)]

    def handler(k: int) -> Callable[[int], None]:
        def handle(item: int) -> None:
            received[k].append(item)
            threads[k].add(threading.get_ident())
            kernel_threads[k].add(torch.get_num_threads())

        return handle

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        error = run_in_thread(lambda: _feed(RoundRobin([handler(k) for k in range(workers)]), 50))
        assert error is None
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    for k in range(workers):
        assert received[k] == list(range(k, 50, workers)), k
        assert len(threads[k]) == 1, k
    if workers > 1:
        assert len(set().union(*threads)) == workers  # one distinct thread per handler
        assert all(counts == {1} for counts in kernel_threads)


def _feed(pool: RoundRobin[int], count: int) -> None:
    with pool:
        for item in range(count):
            pool.submit(item)


@pytest.mark.parametrize("raises", [False, True])
def test_single_threaded_kernels_sets_one_thread_and_restores(raises: bool) -> None:
    """Inside single_threaded_kernels(True) torch runs on 1 thread; the previous count (2) comes back after,
    also when the body raises (and the exception propagates); active=False changes nothing."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        inside: list[int] = []
        expectation: AbstractContextManager[object] = pytest.raises(RuntimeError) if raises else nullcontext()
        with expectation:
            with single_threaded_kernels(True):
                inside.append(torch.get_num_threads())
                if raises:
                    raise RuntimeError("body failed")
        assert inside == [1]
        assert torch.get_num_threads() == 2
        with single_threaded_kernels(False):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def chan_merge(a: ClassStats, b: ClassStats) -> ClassStats:
    """Chan, Golub & LeVeque's pairwise merge of the statistics of two disjoint shards, on sums of raw rows:
    the plain reference the first pass's shifted merge is measured against (it loses ~ε·‖μ_c‖ to
    cancellation where the shifted merge does not)."""
    n_a, n_b = a.counts, b.counts  # (C,), (C,)
    n = n_a + n_b
    delta = a.sums / n_a.clamp_min(1.0)[:, None] - b.sums / n_b.clamp_min(1.0)[:, None]  # (C, d) μ_a − μ_b
    weight = torch.where(n > 0, n_a * n_b / n.clamp_min(1.0), torch.zeros_like(n))  # (C,)
    scaled = delta * weight.sqrt()[:, None]  # (C, d)
    scatter = None if a.scatter is None or b.scatter is None else a.scatter + b.scatter + scaled.T @ scaled
    return ClassStats(n, a.sums + b.sums, scatter, a.sq_dev + b.sq_dev + weight * (delta * delta).sum(1))


# --- merging accumulators (workers, ranks) ------------------------------------------------------------------
def test_merge_moves_the_other_sums_onto_this_shifts_without_losing_precision() -> None:
    """Three shards with different shifts (each fixes its own from its own first rows; class 3 appears
    in the later shards only, class 5 nowhere) merged in order, and packed/unpacked on the way (the
    rank route), give the one-pass statistics to 1e-12 at offset 1e6, where Chan's merge of ClassStats
    (sums of raw rows, chan_merge) is off by more than 1e-11."""
    H, y = make_stream(seed=11, n=3000, offset=1e6, spread=1e-3)
    C = 6
    shards = [slice(0, 400), slice(400, 1700), slice(1700, 3000)]
    parts = [shifted_sums_of(H[rows], y[rows], C, UNEVEN) for rows in shards]
    assert not torch.equal(parts[0].shifts[0], parts[1].shifts[0])  # the shifts really differ
    total = unpack(parts[0], pack(parts[0]))
    for part in parts[1:]:
        merge(total, unpack(part, pack(part)))
    expected = reference(H, y, C)
    assert_matches(total.class_stats(), expected)
    naive = parts[0].class_stats()
    for part in parts[1:]:
        naive = chan_merge(naive, part.class_stats())
    assert relative_error(naive.scatter, expected["scatter"]) > 1e-11  # the test data defeats the old merge


# --- conditioning: one shift for all classes, or each class centred on its mean -----------------------------
def nearly_collapsed(
    seed: int, n: int = 1200, d: int = 16, C: int = 4, noise: float = 1e-7
) -> tuple[np.ndarray, np.ndarray]:
    """Classes ~1 apart with a within-class spread of ``noise``: ‖μ_c − g‖²/σ_c² ≈ 1e14 for one shift g."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, size=n)
    centres = 3.0 + rng.normal(size=(C, d))
    return centres[y] + noise * rng.normal(size=(n, d)), y.astype(np.int64)


def test_one_shift_is_flagged_ill_conditioned_on_nearly_collapsed_classes() -> None:
    """The single-shift accumulator loses σ_c² to cancellation here (relative error ≫ 1e-6) and says so;
    on ordinary data it does not."""
    H, y = nearly_collapsed(seed=1)
    single = shifted_sums_of(H, y, 4, UNEVEN)
    assert single.ill_conditioned()
    assert relative_error(single.class_stats().sq_dev, reference(H, y, 4)["sq_dev"]) > 1e-6
    ordinary, labels = make_stream(seed=2)
    assert not shifted_sums_of(ordinary, labels, 6, UNEVEN).ill_conditioned()


def test_per_class_shifts_are_exact_where_one_shift_is_not() -> None:
    """ShiftedSums(shifts=class means) on the nearly collapsed data: counts, sums, sq_dev and scatter to
    1e-12 of the reference."""
    H, y = nearly_collapsed(seed=3)
    means = torch.from_numpy(reference(H, y, 4)["sums"] / np.bincount(y, minlength=4)[:, None])
    accumulator = ShiftedSums(4, H.shape[1], CPU, shifts=means + 1e-9)  # 1% of σ from the means
    for rows in chunk_slices(len(y), UNEVEN):
        accumulator.update(torch.from_numpy(H[rows]), torch.from_numpy(y[rows]))
    assert not accumulator.ill_conditioned()
    assert_matches(accumulator.class_stats(), reference(H, y, 4))


@pytest.mark.parametrize("threads", [1, 2])
def test_accumulate_stats_reruns_with_per_class_centring_when_needed(tmp_path: Path, threads: int) -> None:
    """On the nearly collapsed data accumulate_stats (single shift first, then the per-class re-run)
    matches the reference to 1e-12, as on ordinary data."""
    H, y = nearly_collapsed(seed=4)
    path = tmp_path / "collapsed.h5"
    with h5py.File(path, "w") as handle:
        handle["features"], handle["labels"] = H, y
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        stats = accumulate_stats(resolve_split(path, None), 4, CPU, SilentTracker(), chunk_rows=64)
    finally:
        torch.set_num_threads(before)
    assert_matches(stats, reference(H, y, 4))
