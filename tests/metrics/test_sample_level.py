"""Sample-level matrix information (docs/METRICS.md) against the dense N×N float64 NumPy computation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.engine.sample_stats import SampleLevelStats
from nc_audit.engine.state import merge, pack, unpack
from nc_audit.metrics.sample_level import sample_level_metrics

KEYS = ("h_samples", "h_labels", "mi_samples", "mir_samples", "hdr_samples", "mi_samples_onehot")


@dataclass(frozen=True)
class Case:
    N: int
    d: int
    C: int
    class_weights: tuple[float, ...] | None = None
    head_rank: int | None = None
    seed: int = 0

    @property
    def data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features (N, d) around class centres, labels (N,), head (C, d), all float64."""
        rng = np.random.default_rng(self.seed)
        y = rng.choice(self.C, self.N, p=self.class_weights)
        H = rng.standard_normal((self.N, self.d)) + 1.5 * rng.standard_normal((self.C, self.d))[y] + 3.0
        if self.head_rank is None:
            W = rng.standard_normal((self.C, self.d))
        else:
            W = rng.standard_normal((self.C, self.head_rank)) @ rng.standard_normal((self.head_rank, self.d))
        return H, y, W


CASES = {
    "balanced": Case(600, 16, 5),
    "unbalanced-absent-class": Case(500, 12, 6, (0.6, 0.25, 0.1, 0.04, 0.01, 0.0), seed=1),
    "C>d": Case(800, 6, 20, seed=2),
    "rank-deficient-head": Case(700, 20, 8, head_rank=3, seed=3),
    "d>=N": Case(60, 100, 4, seed=4),
    "d=N": Case(80, 80, 3, seed=5),
    "N=1500": Case(1500, 24, 10, seed=6),
}


@cache
def dense_reference(case: Case) -> dict[str, float | None]:
    """The definitions on whole N×N matrices: K_Z, K_Y = Gram of w_{y_i}, K_Y1 = [y_i = y_j]; eigvalsh."""
    H, y, W = case.data
    Z = H - H.mean(axis=0)  # (N, d) centred by the global (sample) mean
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    U = W / np.linalg.norm(W, axis=1, keepdims=True)  # (C, d)
    K_Z = Z @ Z.T  # (N, N)
    K_Y = U[y] @ U[y].T  # (N, N)
    K_Y1 = (y[:, None] == y[None, :]).astype(np.float64)  # (N, N)

    def entropy(K: np.ndarray) -> float:
        lam = np.linalg.eigvalsh(K / K.shape[0])
        lam = lam[lam > 0]
        return float(-(lam * np.log(lam)).sum())

    h_z, h_y, h_y1 = entropy(K_Z), entropy(K_Y), entropy(K_Y1)
    mi = h_z + h_y - entropy(K_Z * K_Y)
    return {
        "h_samples": h_z,
        "h_labels": h_y,
        "mi_samples": mi,
        "mir_samples": mi / min(h_z, h_y) if min(h_z, h_y) > 1e-12 else None,
        "hdr_samples": abs(h_z - h_y) / max(h_z, h_y),
        "mi_samples_onehot": h_z + h_y1 - entropy(K_Z * K_Y1),
    }


def chunked(H: np.ndarray, y: np.ndarray, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(y), size):
        yield torch.tensor(H[start : start + size]), torch.tensor(y[start : start + size])


def build(case: Case, *, per_class: bool = True, size: int = 128) -> SampleLevelStats:
    H, y, _ = case.data
    stats = SampleLevelStats(torch.tensor(H.mean(axis=0)), case.C, per_class=per_class)
    for features, labels in chunked(H, y, size):
        stats.update(features, labels)
    return stats


def measure(case: Case, *, per_class: bool = True, with_chunks: bool = False, **kw):
    H, y, W = case.data
    chunks = (lambda: chunked(H, y, 97)) if with_chunks else None
    return sample_level_metrics(build(case, per_class=per_class).sums(), torch.tensor(W), chunks=chunks, **kw)


def max_difference(a: dict[str, float | None], b: dict[str, float | None]) -> float:
    assert all((a[k] is None) == (b[k] is None) for k in KEYS)
    return max(abs(a[k] - b[k]) for k in KEYS if a[k] is not None)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize(
    ("per_class", "with_chunks", "estimator"),
    [(True, False, "auto"), (True, True, "auto"), (False, True, "exact")],
    ids=["scatters", "scatters+rows", "rows"],
)
def test_exact_routes_equal_the_dense_computation(
    name: str, per_class: bool, with_chunks: bool, estimator: str
):
    case = CASES[name]
    result = measure(case, per_class=per_class, with_chunks=with_chunks, estimator=estimator)
    assert set(result.route.values()) <= {"dual", "primal", "counts", "khatri-rao", "class-blocks", "dense"}
    assert max_difference(result.metrics, dense_reference(case)) < 1e-10
    assert result.probes == 0 and not result.interval and not result.notes


def test_routes_pick_the_smaller_side() -> None:
    wide = measure(CASES["d>=N"], with_chunks=True)  # N = 60 < d = 100 < d·r = 400
    assert wide.route == {
        "h_samples": "primal",
        "h_labels": "counts",
        "h_joint": "dense",
        "h_joint_onehot": "class-blocks",
    }
    tall = measure(CASES["balanced"], with_chunks=True)  # N = 600 > d·r = 80
    assert tall.route == {
        "h_samples": "dual",
        "h_labels": "counts",
        "h_joint": "khatri-rao",
        "h_joint_onehot": "class-blocks",
    }
    assert measure(CASES["d>=N"]).route["h_samples"] == "dual"  # without chunks the dual is still exact


def test_chunk_sizes_and_merge_order_do_not_change_the_result() -> None:
    case = CASES["unbalanced-absent-class"]
    H, y, W = case.data
    head = torch.tensor(W)
    reference = sample_level_metrics(build(case, size=case.N).sums(), head).metrics
    for size in (1, 7, 64):
        assert (
            max_difference(sample_level_metrics(build(case, size=size).sums(), head).metrics, reference)
            < 1e-12
        )
    mean = torch.tensor(H.mean(axis=0))
    shards = []
    for part in np.array_split(np.arange(case.N), 3):
        shard = SampleLevelStats(mean, case.C)
        shards.append(shard.update(torch.tensor(H[part]), torch.tensor(y[part])))
    a, b, c = shards
    forward = merge(merge(unpack(a, pack(a)), b), c)
    backward = merge(merge(unpack(c, pack(c)), b), a)
    packed = unpack(a, pack(a) + pack(b) + pack(c))  # as after an all-reduce (SUM) of the packed states
    for merged in (forward, backward, packed):
        assert max_difference(sample_level_metrics(merged.sums(), head).metrics, reference) < 1e-12
    assert forward.nbytes == 8 * (case.C + case.C * case.d**2)


@pytest.mark.parametrize("name", ["balanced", "rank-deficient-head"])
def test_forced_slq_interval_covers_the_exact_joint_entropies(name: str) -> None:
    case = CASES[name]
    exact = dense_reference(case)
    result = measure(case, with_chunks=True, estimator="slq", slq_max_probes=128, seed=1)
    assert result.route["h_joint"] == result.route["h_joint_onehot"] == "slq"
    assert result.route["h_samples"] == "dual"
    assert result.probes == 256
    for key in ("mi_samples", "mi_samples_onehot"):
        assert 0 < result.interval[key] < 0.3
        assert abs(result.metrics[key] - exact[key]) <= result.interval[key]
    for key in ("h_samples", "h_labels", "hdr_samples"):
        assert abs(result.metrics[key] - exact[key]) < 1e-10
    assert len(result.notes) == 2 and all("stochastic Lanczos quadrature" in n for n in result.notes)


def test_budget_fallback_uses_slq_with_a_note_and_exact_ignores_the_budget() -> None:
    case = CASES["balanced"]
    exact = dense_reference(case)
    fallback = measure(case, with_chunks=True, budget_bytes=10_000, slq_max_probes=64)
    assert fallback.route["h_joint"] == "slq"
    assert fallback.route["h_joint_onehot"] == "class-blocks"  # exact from the re-read rows, per class
    assert abs(fallback.metrics["mi_samples_onehot"] - exact["mi_samples_onehot"]) < 1e-10
    assert "Khatri–Rao route needs" in fallback.notes[0] and "N×N matrix needs" in fallback.notes[0]
    no_chunks = measure(case, budget_bytes=10_000)
    assert no_chunks.metrics["mi_samples"] is None and no_chunks.metrics["mir_samples"] is None
    assert no_chunks.metrics["mi_samples_onehot"] is None
    assert abs(no_chunks.metrics["hdr_samples"] - exact["hdr_samples"]) < 1e-10
    assert sum("not computed" in n for n in no_chunks.notes) == 2
    forced = measure(case, budget_bytes=10_000, estimator="exact")
    assert max_difference(forced.metrics, exact) < 1e-10


def test_identical_head_rows_leave_mir_undefined() -> None:
    stats = build(CASES["balanced"]).sums()
    result = sample_level_metrics(stats, torch.ones(5, 16))
    assert abs(result.metrics["h_labels"]) < 1e-12
    assert result.metrics["mir_samples"] is None and result.metrics["hdr_samples"] == pytest.approx(1.0)
    assert abs(result.metrics["mi_samples"]) < 1e-10  # K_Y = 11ᵀ: K_Z∘K_Y = K_Z
    assert any("mir_samples is undefined" in n for n in result.notes)


def test_bad_inputs_raise_input_errors() -> None:
    case = CASES["balanced"]
    H, y, W = case.data
    accumulator = build(case)
    stats = accumulator.sums()
    head = torch.tensor(W)
    with pytest.raises(InputError, match=r"outside 0\.\.4"):
        accumulator.update(torch.tensor(H[:3]), torch.tensor([0, 5, 1]))
    with pytest.raises(InputError, match="integers"):
        accumulator.update(torch.tensor(H[:3]), torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="expected"):
        accumulator.update(torch.tensor(H[:3, :4]), torch.tensor(y[:3]))
    with pytest.raises(InputError, match="head weight"):
        sample_level_metrics(stats, head[:, :3])
    with pytest.raises(InputError, match="needs chunks"):
        sample_level_metrics(stats, head, estimator="slq")
    with pytest.raises(InputError, match="estimator must be"):
        sample_level_metrics(stats, head, estimator="fast")
    with pytest.raises(InputError, match="estimator='exact' needs"):
        sample_level_metrics(build(case, per_class=False).sums(), head, estimator="exact")
    with pytest.raises(InputError, match="class counts differ"):
        sample_level_metrics(stats, head, estimator="slq", chunks=lambda: chunked(H[:100], y[:100], 50))
    with pytest.raises(ValueError, match="cannot merge"):
        merge(accumulator, SampleLevelStats(torch.zeros(16, dtype=torch.float64), case.C))
