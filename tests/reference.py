"""A plain float64 NumPy reference of docs/METRICS.md, written from the spec (no imports from nc_audit).

Everything is computed the obvious way on whole arrays: explicit means and covariances, explicit
pairwise loops over classes, explicit N×C distance matrices. It is slow and simple on purpose, so that
the package's streaming, batched, SVD-based routes are checked against the definitions themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

#: Relative eigenvalue cut-off of Σ_B's pseudo-inverse (docs/METRICS.md, nc1).
PINV_RTOL = 1e-10
#: An entropy at or below this counts as 0 when it would divide MIR or HDR (those are then undefined).
ZERO_ENTROPY = 1e-12

NC_KEYS = (
    "nc1",
    "nc1_cdnv",
    "nc2_equinorm_means",
    "nc2_equinorm_head",
    "nc2_equiangular_means",
    "nc2_equiangular_head",
    "nc2_maxangle_means",
    "nc2_maxangle_head",
    "nc3",
    "nc4",
)
INFORMATION_KEYS = ("h_head", "h_means", "mi", "mir", "hdr")
ALL_KEYS = NC_KEYS + INFORMATION_KEYS


@dataclass(frozen=True)
class Problem:
    """A labelled feature set and a classifier head: what one measurement reads."""

    features: np.ndarray  # (N, d) float64
    labels: np.ndarray  # (N,) int64 in 0..C-1
    W: np.ndarray  # (C, d) head rows
    b: np.ndarray | None  # (C,) head bias

    @property
    def num_classes(self) -> int:
        return int(self.W.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.W.shape[1])

    @property
    def num_samples(self) -> int:
        return int(self.features.shape[0])


# --- matrix information ---------------------------------------------------------------------------
def gram(X: np.ndarray) -> np.ndarray:
    """G_ij = <x_i/‖x_i‖, x_j/‖x_j‖>. (n, d) -> (n, n)"""
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    return U @ U.T


def matrix_entropy(K: np.ndarray) -> float:
    """H(K) = −Σ λ log λ over the eigenvalues λ of K/n; λ = 0 (and round-off below 0) contributes 0."""
    n = K.shape[0]
    lam = np.linalg.eigvalsh(K / n)
    lam = lam[lam > 0]
    return float(-(lam * np.log(lam)).sum())


def information(K1: np.ndarray, K2: np.ndarray) -> dict[str, float | None]:
    """H(K1), H(K2), MI, MIR, HDR; an undefined ratio (division by a zero entropy) is None."""
    h1, h2 = matrix_entropy(K1), matrix_entropy(K2)
    mi = h1 + h2 - matrix_entropy(K1 * K2)
    smaller, larger = min(h1, h2), max(h1, h2)
    return {
        "h1": h1,
        "h2": h2,
        "mi": mi,
        "mir": mi / smaller if smaller > ZERO_ENTROPY else None,
        "hdr": abs(h1 - h2) / larger if larger > ZERO_ENTROPY else None,
    }


def simplex_etf_gram(C: int) -> np.ndarray:
    """G = C/(C−1)·I − 1/(C−1)·11ᵀ, the Gram of a simplex ETF."""
    return C / (C - 1) * np.eye(C) - np.ones((C, C)) / (C - 1)


def mir_nc(C: int) -> float:
    """MIR_NC(C) = 1/(C−1) + (C−2)·log(C−2)/((C−1)·log(C−1)) (docs/METRICS.md), for C ≥ 3."""
    return 1 / (C - 1) + (C - 2) * math.log(C - 2) / ((C - 1) * math.log(C - 1))


# --- Neural Collapse ------------------------------------------------------------------------------
def pinv_sym(A: np.ndarray, max_rank: int) -> np.ndarray:
    """Pseudo-inverse of a symmetric PSD matrix from the eigenpairs above PINV_RTOL·λ_max, at most max_rank."""
    lam, V = np.linalg.eigh(A)  # ascending
    keep = np.flatnonzero(lam > PINV_RTOL * lam[-1])[-max_rank:]  # the largest ones
    return (V[:, keep] / lam[keep]) @ V[:, keep].T


def _cosines(X: np.ndarray) -> np.ndarray:
    """cos(x_c, x_c') for all pairs c < c', in the order of itertools.combinations."""
    return np.array(
        [
            X[a] @ X[b] / (np.linalg.norm(X[a]) * np.linalg.norm(X[b]))
            for a, b in combinations(range(len(X)), 2)
        ]
    )


def _equinorm(X: np.ndarray) -> float:
    norms = np.linalg.norm(X, axis=1)
    return float(norms.std() / norms.mean())  # numpy's std is the population std (ddof=0)


def _maxangle(X: np.ndarray) -> float:
    return float(np.abs(_cosines(X) + 1 / (len(X) - 1)).mean())


def reference_metrics(
    features: np.ndarray,
    labels: np.ndarray,
    W: np.ndarray,
    b: np.ndarray | None = None,
    decision_features: np.ndarray | None = None,
) -> dict[str, float | None]:
    """Every class-level key of docs/METRICS.md from features (N, d), labels (N,), head W (C, d), bias b (C,).

    All C classes must be present. NC4 is counted on ``decision_features`` (default: ``features``)
    with the class means of ``features``.
    """
    H = np.asarray(features, dtype=np.float64)  # (N, d)
    y = np.asarray(labels).astype(np.int64)  # (N,)
    W = np.asarray(W, dtype=np.float64)  # (C, d)
    C, N = W.shape[0], H.shape[0]
    assert set(np.unique(y)) == set(range(C)), "the reference needs every class present"

    mu = np.stack([H[y == c].mean(axis=0) for c in range(C)])  # (C, d) class means
    mu_G = H.mean(axis=0)  # (d,) global mean over samples
    M = mu - mu_G  # (C, d) centred class means
    D = H - mu[y]  # (N, d)
    Sigma_W = D.T @ D / N  # (d, d)
    Sigma_B = M.T @ M / C  # (d, d)

    nc1 = float(np.trace(Sigma_W @ pinv_sym(Sigma_B, C - 1)) / C)
    sigma2 = np.array([((H[y == c] - mu[c]) ** 2).sum(axis=1).mean() for c in range(C)])  # (C,)
    cdnv = [
        (sigma2[a] + sigma2[c]) / (2 * np.sum((mu[a] - mu[c]) ** 2)) for a, c in combinations(range(C), 2)
    ]
    nc3 = float(np.sum((W / np.linalg.norm(W) - M / np.linalg.norm(M)) ** 2))

    Z = H if decision_features is None else np.asarray(decision_features, dtype=np.float64)
    logits = Z @ W.T + (0.0 if b is None else np.asarray(b, dtype=np.float64))  # (N', C)
    distances = np.linalg.norm(Z[:, None, :] - mu[None, :, :], axis=2)  # (N', C)
    nc4 = float(np.mean(logits.argmax(axis=1) != distances.argmin(axis=1)))

    info = information(gram(W), gram(M))
    return {
        "nc1": nc1,
        "nc1_cdnv": float(np.mean(cdnv)),
        "nc2_equinorm_means": _equinorm(M),
        "nc2_equinorm_head": _equinorm(W),
        "nc2_equiangular_means": float(_cosines(M).std()),
        "nc2_equiangular_head": float(_cosines(W).std()),
        "nc2_maxangle_means": _maxangle(M),
        "nc2_maxangle_head": _maxangle(W),
        "nc3": nc3,
        "nc4": nc4,
        "h_head": info["h1"],
        "h_means": info["h2"],
        "mi": info["mi"],
        "mir": info["mir"],
        "hdr": info["hdr"],
    }


def relative_difference(value: float | None, reference: float | None) -> float:
    """|value − reference| / |reference| (absolute when the reference is 0; 0 when both are None)."""
    if value is None or reference is None:
        return 0.0 if value is None and reference is None else math.inf
    scale = abs(reference)
    return abs(value - reference) / scale if scale > 0 else abs(value - reference)


# --- --min-class-samples --------------------------------------------------------------------------
def keep_classes(
    features: np.ndarray, labels: np.ndarray, W: np.ndarray, b: np.ndarray | None, min_samples: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int]:
    """The problem restricted to the classes with at least ``min_samples`` samples: their rows, their
    labels renumbered 0..C'−1, their head rows and biases, and the number of samples left out."""
    counts = np.bincount(labels, minlength=W.shape[0])  # (C,)
    kept = np.flatnonzero(counts >= max(min_samples, 1))  # (C',)
    renumber = np.full(W.shape[0], -1)
    renumber[kept] = np.arange(kept.size)
    rows = renumber[labels] >= 0  # (N,)
    bias = None if b is None else np.asarray(b)[kept]
    return features[rows], renumber[labels[rows]], W[kept], bias, int((~rows).sum())
