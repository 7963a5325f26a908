"""Neural Collapse metrics NC1–NC4 (METRICS.md), pure functions of ClassStats and the head.

Papyan, Han & Donoho (2020), "Prevalence of neural collapse during the terminal phase of deep learning
training", PNAS 117(40); CDNV from Galanti, György & Hutter (2022), ICLR. All arithmetic is float64.
Conventions (named in every report): the global mean is sample-weighted, Σ_B weights classes equally,
standard deviations are population ones, NC4 includes the head's bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nc_audit.core.linalg import PINV_RTOL, pairwise_upper
from nc_audit.core.class_stats import ClassStats


def centred_means(stats: ClassStats) -> torch.Tensor:
    """M̄: rows m̄_c = μ_c − μ_G with the sample-weighted global mean. (C, d)"""
    return stats.class_means - stats.global_mean[None, :]


def nc1(stats: ClassStats) -> float:
    """Within-class variability relative to between-class spread, tr(Σ_W Σ_B^†)/C.

    Papyan, Han & Donoho (2020), PNAS 117(40).
    """
    return float(nc1_batched(centred_means(stats)[None], stats.within_cov[None])[0])


def pinv_eigenpairs(M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The eigenpairs of Σ_B = M̄ᵀM̄/C that its pseudo-inverse keeps (METRICS.md, nc1), batched.

    From the thin SVD of M̄ (λ_k = s_k²/C, eigenvectors v_k) without squaring M̄; eigenvalues above
    1e-10·λ_max and at most C−1 of them are kept; the others get λ = inf (so 1/λ = 0).
    M: (B, C, d) -> eigenvalues (B, r), eigenvectors (B, r, d).
    """
    C = M.shape[-2]
    _, s, Vh = torch.linalg.svd(M, full_matrices=False)  # (B, r), (B, r, d); s descending
    eigenvalues = s * s / C  # (B, r) eigenvalues of Σ_B
    rank_index = torch.arange(eigenvalues.shape[-1], device=M.device)  # (r,)
    keep = (eigenvalues > PINV_RTOL * eigenvalues[:, :1]) & (rank_index < C - 1)  # (B, r)
    return torch.where(keep, eigenvalues, torch.full_like(eigenvalues, float("inf"))), Vh


def nc1_batched(M: torch.Tensor, Sigma_W: torch.Tensor) -> torch.Tensor:
    """NC1 = tr(Σ_W Σ_B^†)/C for a batch of checkpoints, with no Python loop over them.

    M: (B, C, d) centred class means; Sigma_W: (B, d, d). Returns (B,).
    """
    eigenvalues, Vh = pinv_eigenpairs(M)  # (B, r), (B, r, d)
    projected = torch.einsum("brd,bde,bre->br", Vh, Sigma_W, Vh)  # (B, r) v_kᵀ Σ_W v_k
    return (projected / eigenvalues).sum(-1) / M.shape[-2]  # (B,)


class WithinProjection:
    """NC1 without the d×d scatter: v_kᵀ Σ_W v_k = (1/N) Σ_i (v_k·(h_i − μ_{y_i}))², streamed.

    Only the ≤ C−1 eigenvectors of Σ_B enter tr(Σ_W Σ_B^†), so once pass 1 has fixed the class means,
    pass 2 accumulates the squared projections of the within-class deviations onto them: N·d·C flops
    instead of the scatter's N·d². Exact (same value as nc1 from the full Σ_W, up to rounding); the
    sums add across chunks, shards and ranks.
    """

    def __init__(self, class_means: torch.Tensor, centred_means: torch.Tensor) -> None:
        """class_means: (C_head, d) μ_c indexed by label; centred_means: (C, d) m̄_c of the present classes."""
        self.class_means = class_means.to(torch.float64)  # (C_head, d)
        self.num_classes = int(centred_means.shape[0])
        eigenvalues, Vh = pinv_eigenpairs(centred_means.to(torch.float64)[None])
        self.eigenvalues, self.basis = eigenvalues[0], Vh[0]  # (r,), (r, d)
        self.squared = torch.zeros_like(self.eigenvalues)  # (r,) Σ_i (v_k·(h_i − μ_{y_i}))²
        self.samples = 0

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Add one chunk: features (n, d), labels (n,)."""
        H = features.to(device=self.class_means.device, dtype=torch.float64)  # (n, d)
        D = H - self.class_means[labels.to(H.device, torch.long)]  # (n, d)
        self.add_projected(D @ self.basis.T)

    def add_projected(self, P: torch.Tensor) -> None:
        """Add rows' projections P (n, r) = (h_i − μ_{y_i})·v_k, computed by the caller (a fused pass)."""
        self.squared += (P * P).sum(0)
        self.samples += int(P.shape[0])

    def nc1(self, num_samples: int | None = None) -> float:
        """tr(Σ_W Σ_B^†)/C from the accumulated projections (N = all samples of the pass by default)."""
        N = num_samples if num_samples is not None else self.samples
        return float((self.squared / N / self.eigenvalues).sum() / self.num_classes)


def nc1_cdnv(stats: ClassStats) -> float:
    """Class-distance normalised variance, mean over pairs c<c' of (σ_c² + σ_c'²) / (2‖μ_c − μ_c'‖²).

    Galanti, György & Hutter (2022), "On the role of neural collapse in transfer learning", ICLR.
    """
    M = centred_means(stats)  # (C, d) centring first keeps the distance formula well conditioned
    sq_norms = (M * M).sum(1)  # (C,)
    distances = (sq_norms[:, None] + sq_norms[None, :] - 2.0 * (M @ M.T)).clamp_min(0.0)  # (C, C)
    variances = stats.class_variances  # (C,)
    numerators = variances[:, None] + variances[None, :]  # (C, C)
    return float((pairwise_upper(numerators) / (2.0 * pairwise_upper(distances))).mean())


def _cosines(X: torch.Tensor) -> torch.Tensor:
    """Cosines of all pairs c<c' of the rows of X. (C, d) -> (C(C−1)/2,)"""
    U = X / torch.linalg.vector_norm(X, dim=1, keepdim=True)  # (C, d)
    return pairwise_upper(U @ U.T)


def equinorm(X: torch.Tensor) -> float:
    """NC2 equinorm: std_c ‖x_c‖ / mean_c ‖x_c‖ (population std). Papyan et al. (2020), Fig. 2."""
    norms = torch.linalg.vector_norm(X.to(torch.float64), dim=1)  # (C,)
    return float(norms.std(correction=0) / norms.mean())


def equiangular(X: torch.Tensor) -> float:
    """NC2 equiangularity: std over pairs c<c' of cos(x_c, x_c'). Papyan et al. (2020), Fig. 3."""
    return float(_cosines(X.to(torch.float64)).std(correction=0))


def maxangle(X: torch.Tensor) -> float:
    """NC2 maximal angle: mean over pairs of |cos(x_c, x_c') + 1/(C−1)|. Papyan et al. (2020), Fig. 4."""
    C = X.shape[0]
    return float((_cosines(X.to(torch.float64)) + 1.0 / (C - 1)).abs().mean())


def nc3(head_weight: torch.Tensor, stats: ClassStats) -> float:
    """Self-duality ‖W/‖W‖_F − M̄/‖M̄‖_F‖_F². Papyan et al. (2020), Fig. 5."""
    W = head_weight.to(torch.float64)  # (C, d)
    M = centred_means(stats)  # (C, d)
    return float(
        torch.linalg.matrix_norm(W / torch.linalg.matrix_norm(W) - M / torch.linalg.matrix_norm(M)) ** 2
    )


@dataclass
class DecisionCounter:
    """Streaming counts for NC4 (second pass): classifier vs nearest-class-centre decisions.

    NC4 = fraction of samples where argmax_c (W h + b)_c ≠ argmin_c ‖h − μ_c‖ (Papyan et al. 2020,
    Fig. 7). The nearest centre is searched among ``candidate_classes`` (the classes with training
    means); the classifier's argmax runs over all head rows. Counts add up across chunks and ranks.
    """

    class_means: torch.Tensor  # (C', d) float64, means of the candidate classes
    candidate_classes: torch.Tensor  # (C',) long, their class indices
    head_weight: torch.Tensor  # (C, d) float64
    head_bias: torch.Tensor | None  # (C,) float64
    samples: int = 0
    mismatches: int = 0
    classifier_correct: int = 0
    ncc_correct: int = 0
    _mean_sq: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._mean_sq = (self.class_means * self.class_means).sum(1)  # (C',)

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Count one chunk of features (n, d) with labels (n,)."""
        H = features.to(device=self.class_means.device, dtype=torch.float64)  # (n, d)
        y = labels.to(device=H.device, dtype=torch.long)  # (n,)
        logits = H @ self.head_weight.T  # (n, C)
        if self.head_bias is not None:
            logits = logits + self.head_bias
        # ‖h − μ_c‖² = ‖h‖² − 2 h·μ_c + ‖μ_c‖²; the ‖h‖² term does not change the argmin.
        self.count(logits, self._mean_sq[None, :] - 2.0 * (H @ self.class_means.T), y)

    def count(self, logits: torch.Tensor, distances: torch.Tensor, labels: torch.Tensor) -> None:
        """Count rows from their logits (n, C) and anything that orders the candidate classes like
        ‖h − μ_c‖² (n, C'), computed by the caller (a fused pass); labels (n,)."""
        y = labels.to(device=logits.device, dtype=torch.long)  # (n,)
        predicted = logits.argmax(1)  # (n,)
        nearest = self.candidate_classes[distances.argmin(1)]  # (n,)
        self.samples += int(y.shape[0])
        self.mismatches += int((predicted != nearest).sum())
        self.classifier_correct += int((predicted == y).sum())
        self.ncc_correct += int((nearest == y).sum())

    def merge_counts(self, other: DecisionCounter) -> None:
        """Add another counter's counts (another shard or rank) in place."""
        self.samples += other.samples
        self.mismatches += other.mismatches
        self.classifier_correct += other.classifier_correct
        self.ncc_correct += other.ncc_correct

    def counts(self) -> torch.Tensor:
        """The four counts as an int64 tensor (for an all-reduce)."""
        values = [self.samples, self.mismatches, self.classifier_correct, self.ncc_correct]
        return torch.tensor(values, dtype=torch.int64)

    def set_counts(self, values: torch.Tensor) -> None:
        """Replace the counts (after an all-reduce of :meth:`counts`)."""
        self.samples, self.mismatches, self.classifier_correct, self.ncc_correct = (int(v) for v in values)

    @property
    def nc4(self) -> float:
        """Fraction of classifier decisions that differ from the nearest class centre."""
        return self.mismatches / self.samples

    @property
    def accuracy(self) -> float:
        """Classifier accuracy (argmax of W h + b equals the label)."""
        return self.classifier_correct / self.samples

    @property
    def ncc_accuracy(self) -> float:
        """Nearest-class-centre accuracy."""
        return self.ncc_correct / self.samples


def collapse_metrics(
    stats: ClassStats, head_weight: torch.Tensor, nc1_value: float | None = None
) -> dict[str, float]:
    """NC1–NC3 and their variants (every key of METRICS.md except nc4, which needs a second pass).

    ``nc1_value`` passes in an NC1 already computed in a batch (see :func:`nc1_batched`)."""
    W = head_weight.to(torch.float64)  # (C, d)
    M = centred_means(stats)  # (C, d)
    return {
        "nc1": nc1(stats) if nc1_value is None else nc1_value,
        "nc1_cdnv": nc1_cdnv(stats),
        "nc2_equinorm_means": equinorm(M),
        "nc2_equinorm_head": equinorm(W),
        "nc2_equiangular_means": equiangular(M),
        "nc2_equiangular_head": equiangular(W),
        "nc2_maxangle_means": maxangle(M),
        "nc2_maxangle_head": maxangle(W),
        "nc3": nc3(W, stats),
    }
