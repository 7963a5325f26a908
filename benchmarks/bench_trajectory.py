"""Row: class-level information over a trajectory — one batched computation vs a per-checkpoint loop.

nc-audit: class_level_information on (B, C, d) stacks of head rows W and centred means M̄ (Grams built
batched, H(K_W), H(K_M), H(K_W∘K_M) through ONE batched eigvalsh of 3B C×C matrices). Reference: a
Python loop over checkpoints, NumPy Grams and np.linalg.eigvalsh of the three C×C matrices each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from bench_common import Limits, Row, best_of

from nc_audit.core.threads import worker_count
from nc_audit.metrics.eigen_backend import ENV_VAR
from nc_audit.metrics.information import class_level_information

COMPARED = ("h_head", "h_means", "mi")
TARGET_SPEEDUP = 10.0


def stacks(B: int, C: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random head rows W and centred means M̄, each (B, C, d) float64."""
    generator = torch.Generator().manual_seed(seed)
    W = torch.randn(B, C, d, generator=generator, dtype=torch.float64)  # (B, C, d)
    M = torch.randn(B, C, d, generator=generator, dtype=torch.float64)  # (B, C, d)
    return W, M - M.mean(1, keepdim=True)


def _entropy(K: np.ndarray) -> float:
    lam = np.linalg.eigvalsh(K) / K.shape[0]
    lam = lam[lam > 0]
    return float(-(lam * np.log(lam)).sum())


def _gram(X: np.ndarray) -> np.ndarray:
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    return U @ U.T


def numpy_loop(W: np.ndarray, M: np.ndarray) -> list[dict[str, float]]:
    """The obvious code: per checkpoint, two Grams, three eigvalsh."""
    results = []
    for W_b, M_b in zip(W, M, strict=True):
        K_W, K_M = _gram(W_b), _gram(M_b)
        h_head, h_means = _entropy(K_W), _entropy(K_M)
        results.append({"h_head": h_head, "h_means": h_means, "mi": h_head + h_means - _entropy(K_W * K_M)})
    return results


def per_checkpoint_loop(W: torch.Tensor, M: torch.Tensor) -> list[dict[str, float | None]]:
    """nc-audit's own kernels, one checkpoint at a time (on the stacks' device): the loop a batched call
    replaces, timed on the same GPU."""
    return [class_level_information(W[b : b + 1], M[b : b + 1])[0] for b in range(W.shape[0])]


@contextmanager
def eigh_backend(name: str | None) -> Iterator[None]:
    """Force the CUDA eigvalsh backend ('cusolver' | 'magma'; None: nc-audit's measured choice) for the
    duration, through NC_AUDIT_EIGH_BACKEND (nc_audit.metrics.eigen_backend)."""
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = name or "auto"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = before


def largest_difference(a: list[dict], b: list[dict], relative: bool = False) -> float:
    """max |a − b| over the COMPARED keys of two lists of per-checkpoint results (relative: / max |b|)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        for key in COMPARED:
            difference = abs(x[key] - y[key])
            worst = max(worst, difference / max(abs(y[key]), 1e-300) if relative else difference)
    return worst


def run(B: int, C: int, d: int, limits: Limits, repeats: int) -> Row:
    W, M = stacks(B, C, d)
    W_np, M_np = W.numpy(), M.numpy()
    ours_s, ours = best_of(repeats, lambda: class_level_information(W, M))
    loop_s, loop = best_of(repeats, lambda: numpy_loop(W_np, M_np))
    difference = max(abs(a[key] - b[key]) for a, b in zip(ours, loop, strict=True) for key in COMPARED)
    flops = B * (2 * 2.0 * C * C * d + 3 * 4 / 3 * C**3)  # two Gram builds, three eigvalsh per checkpoint
    row = Row(
        f"trajectory, {B} checkpoints, C={C}, d={d}",
        ours_s,
        reference="NumPy eigvalsh loop",
        reference_s=loop_s,
        ratio=loop_s / ours_s,
        difference=difference,
        floor_s=limits.floor(nbytes=2 * 8.0 * B * C * d, flops=flops),
        target=f"≥ {TARGET_SPEEDUP:g}×",
    )
    row.met = row.ratio >= TARGET_SPEEDUP
    K = torch.randn(3 * B, C, C, dtype=torch.float64)  # (3B, C, C); eigvalsh reads the lower triangle
    eig_s, _ = best_of(repeats, lambda: torch.linalg.eigvalsh(K))
    row.extra["batched eigvalsh alone"] = (
        f"{eig_s:.3f} s for {3 * B} matrices ({1e6 * eig_s / (3 * B):.0f} µs each), one core"
    )
    K_np = K.numpy()
    loop_eig_s, _ = best_of(repeats, lambda: [np.linalg.eigvalsh(k) for k in K_np])
    cores = worker_count(torch.device("cpu"))
    ceiling = loop_s / (min(eig_s, loop_eig_s) / cores)
    row.extra["ceiling on this machine"] = (
        f"the loop spends ≈ {min(loop_eig_s, loop_s):.3f} s of its {loop_s:.3f} s in the same LAPACK eigensolver "
        f"(tridiagonalisation, {1e6 * loop_eig_s / (3 * B):.0f} µs per {C}×{C} matrix); with all {cores} "
        f"cores on eigvalsh and nothing else, a batched route could be at most {ceiling:.1f}× faster "
        "than the loop on this CPU"
    )
    return row
