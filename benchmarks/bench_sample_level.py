"""Row: sample-level H and MI (docs/METRICS.md) — nc-audit's structured exact routes vs dense N×N eigvalsh.

nc-audit: μ_G, SampleLevelStats (per-class scatters S_c, d×d) and sample_level_metrics(estimator="exact"):
H(K_Z) from the dual d×d Gram, H(K_Z∘K_Y) by the Khatri–Rao route (side d·r), H(K_Z∘K_Y1) by class blocks.
Dense reference: the N×N float64 matrices K_Z, K_Y, K_Z∘K_Y, K_Y1, K_Z∘K_Y1, one torch.linalg.eigvalsh
each. Compared: h_samples, mi_samples, mi_samples_onehot (max absolute difference).
"""

from __future__ import annotations

import torch
from bench_common import Limits, Row, best_of

from nc_audit.core.linalg import entropy_from_eigenvalues, unit_rows
from nc_audit.engine.sample_stats import SampleLevelStats
from nc_audit.metrics.sample_level import sample_level_metrics

COMPARED = ("h_samples", "mi_samples", "mi_samples_onehot")
TARGET_N, TARGET_SPEEDUP, TARGET_AGREEMENT = 8000, 10.0, 1e-9


def problem(N: int, d: int, C: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features (N, d) around C random centres with an offset, labels (N,), a noisy head W (C, d)."""
    generator = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(C, d, generator=generator, dtype=torch.float64)  # (C, d)
    y = torch.randint(C, (N,), generator=generator)  # (N,)
    H = centres[y] + torch.randn(N, d, generator=generator, dtype=torch.float64) + 2.0  # (N, d)
    W = centres + 0.5 * torch.randn(C, d, generator=generator, dtype=torch.float64)  # (C, d)
    return H, y, W


def ours(H: torch.Tensor, y: torch.Tensor, W: torch.Tensor) -> dict[str, float | None]:
    """nc-audit, from the features in memory: both passes' statistics and the six metrics."""
    stats = SampleLevelStats(H.mean(0), W.shape[0])
    stats.update(H, y)
    return sample_level_metrics(stats.sums(), W, estimator="exact", budget_bytes=2**34).metrics


def _entropy(K: torch.Tensor) -> float:
    return float(entropy_from_eigenvalues(torch.linalg.eigvalsh(K), float(K.shape[0])))


def dense(H: torch.Tensor, y: torch.Tensor, W: torch.Tensor) -> dict[str, float]:
    """The definitions on N×N float64 matrices, one at a time (peak ≈ 3 N×N matrices)."""
    Z_hat = unit_rows(H - H.mean(0))  # (N, d)
    K_Z = Z_hat @ Z_hat.T  # (N, N)
    h_samples = _entropy(K_Z)
    U = unit_rows(W)[y]  # (N, d) head row of each sample's label
    K_Y = U @ U.T  # (N, N)
    h_labels = _entropy(K_Y)
    h_joint = _entropy(K_Y.mul_(K_Z))
    del K_Y
    K_Y1 = (y[:, None] == y[None, :]).to(torch.float64)  # (N, N)
    h_onehot = _entropy(K_Y1)
    h_joint_onehot = _entropy(K_Y1.mul_(K_Z))
    return {
        "h_samples": h_samples,
        "mi_samples": h_samples + h_labels - h_joint,
        "mi_samples_onehot": h_samples + h_onehot - h_joint_onehot,
    }


def flops_ours(N: int, d: int, C: int) -> float:
    """Scatters 2Nd², dual eig (4/3)d³, C class blocks (4/3)d³, Khatri–Rao build C(dr)² + eig (4/3)(dr)³."""
    r = min(C, d)
    return 2.0 * N * d * d + (1 + C) * 4 / 3 * d**3 + C * (d * r) ** 2 + 4 / 3 * (d * r) ** 3


def flops_dense(N: int, d: int) -> float:
    """Two N×N Gram builds 2N²d each, five N×N eigvalsh (4/3)N³."""
    return 4.0 * N * N * d + 5 * 4 / 3 * N**3


def run(
    sizes: tuple[int, ...], d: int, C: int, limits: Limits, dense_budget_s: float, repeats: int
) -> list[Row]:
    """One row per N; dense is skipped (with a note) when its extrapolated time or memory is too large."""
    rows: list[Row] = []
    dense_time: tuple[int, float] | None = None  # (N, seconds) of the largest dense run so far
    for N in sizes:
        H, y, W = problem(N, d, C)
        ours_s, metrics = best_of(repeats, lambda H=H, y=y, W=W: ours(H, y, W))
        row = Row(f"sample-level H/MI, N={N:,}, d={d}, C={C}", ours_s, reference="dense N×N eigvalsh")
        row.floor_s = limits.floor(nbytes=8.0 * N * d, flops=flops_ours(N, d, C))
        skip = _dense_skip_reason(N, dense_time, dense_budget_s)
        if skip:
            row.notes.append(f"dense skipped: {skip}")
        else:
            dense_s, reference = best_of(1, lambda H=H, y=y, W=W: dense(H, y, W))
            dense_time = (N, dense_s)
            row.reference_s, row.ratio = dense_s, dense_s / ours_s
            row.difference = max(abs(metrics[key] - reference[key]) for key in COMPARED)
            dense_floor = limits.floor(nbytes=5 * 8.0 * N * N, flops=flops_dense(N, d))
            row.extra["dense % of floor"] = f"{100 * dense_floor / dense_s:.0f}%"
        if N == TARGET_N or (N == max(sizes) and TARGET_N not in sizes):
            row.target = f"≥ {TARGET_SPEEDUP:g}× and |diff| ≤ {TARGET_AGREEMENT:g}"
            if row.ratio is None:
                row.met = False
                row.notes.append("no dense reference, so the target could not be checked")
            else:
                row.met = row.ratio >= TARGET_SPEEDUP and row.difference <= TARGET_AGREEMENT
            if N != TARGET_N:
                row.notes.append(f"target is defined at N={TARGET_N:,}; checked here at quick size")
        rows.append(row)
    return rows


def _dense_skip_reason(N: int, measured: tuple[int, float] | None, budget_s: float) -> str:
    """Why the dense route is not run at N (empty string: run it)."""
    need = 3 * 8 * N * N  # K_Z, K_Y (or K_Y1) and eigvalsh's working copy
    available = _available_bytes()
    if available is not None and need > 0.8 * available:
        return f"needs ≈ {need / 1e9:.1f} GB, {available / 1e9:.1f} GB available"
    if measured is not None:
        estimate = measured[1] * (N / measured[0]) ** 3
        if estimate > budget_s:
            return (
                f"≈ {estimate:.0f} s estimated (cubic from {measured[1]:.1f} s at N={measured[0]:,}) "
                f"> --dense-budget {budget_s:g} s; also ≈ {need / 1e9:.1f} GB"
            )
    return ""


def _available_bytes() -> int | None:
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
