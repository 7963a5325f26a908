"""The second pass's streaming accumulators: NC4 decisions and NC1's projections onto Σ_B's eigenvectors.

Both hold plain sums over rows (declared "sum" in the merge protocol, :mod:`nc_audit.engine.state`), so
workers and ranks merge them by addition; the metrics come from :mod:`nc_audit.metrics.collapse`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from nc_audit.engine.blocks import product_shape
from nc_audit.engine.decisions import DecisionTables
from nc_audit.engine.state import Accumulator, Reduction
from nc_audit.metrics.collapse import nc1_from_projections, pinv_eigenpairs


@dataclass
class DecisionCounter(Accumulator):
    """Streaming counts for NC4 (second pass): classifier vs nearest-class-centre decisions.

    NC4 = fraction of samples where argmax_c (W h + b)_c ≠ argmin_c ‖h − μ_c‖ (Papyan et al. 2020,
    Fig. 7). The nearest centre is searched among ``candidate_classes`` (the classes with training
    means); the classifier's argmax runs over all head rows.
    """

    reductions: ClassVar[Mapping[str, Reduction]] = {"samples": "sum", "decisions": "sum"}

    class_means: torch.Tensor  # (C', d) float64, means of the candidate classes
    candidate_classes: torch.Tensor  # (C',) long, their class indices
    head_weight: torch.Tensor  # (C, d) float64
    head_bias: torch.Tensor | None  # (C,) float64
    samples: int = 0
    #: How the rows whose decisions are counted were chosen, when not all of them (the report's convention).
    subset: str | None = None
    #: (3,) int64 on the means' device: mismatches, classifier_correct, ncc_correct. Kept on the device
    #: (a streaming pass never reads a block's counts back); the properties below read them once.
    decisions: torch.Tensor = field(init=False, repr=False)
    _tables: DecisionTables | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.decisions = torch.zeros(3, dtype=torch.int64, device=self.class_means.device)

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Count one chunk of features (n, d) with labels (n,), in float64, a block of rows and a tile of
        classes at a time within the byte budget of :func:`nc_audit.engine.blocks.product_shape` (never
        an n × C matrix): argmax of W h + b, and argmin ‖h − μ_c‖² as argmax h·μ_c − ‖μ_c‖²/2."""
        H = features.to(device=self.class_means.device, dtype=torch.float64)  # (n, d)
        y = labels.to(device=H.device, dtype=torch.long)  # (n,)
        if self._tables is None:
            origin = torch.zeros(H.shape[1], dtype=torch.float64, device=H.device)
            self._tables = DecisionTables(self.head_weight, self.head_bias, self.class_means, origin, False)
        rows, _ = product_shape(int(H.shape[1]), self._tables.columns, H.device)
        for begin in range(0, int(H.shape[0]), rows):
            predicted, nearest = self._tables.decide64(H[begin : begin + rows])
            self.tally(predicted, self.candidate_classes[nearest], y[begin : begin + rows])

    def count(self, logits: torch.Tensor, distances: torch.Tensor, labels: torch.Tensor) -> None:
        """Count rows from their logits (n, C) and anything that orders the candidate classes like
        ‖h − μ_c‖² (n, C'), computed by the caller (a fused pass); labels (n,)."""
        self.tally(logits.argmax(1), self.candidate_classes[distances.argmin(1)], labels)

    def tally(self, predicted: torch.Tensor, nearest: torch.Tensor, labels: torch.Tensor) -> None:
        """Count rows from their decisions: the classifier's class (n,) and the nearest mean's class (n,)."""
        y = labels.to(device=predicted.device, dtype=torch.long)  # (n,)
        self.samples += int(y.shape[0])
        self.decisions += torch.stack([predicted != nearest, predicted == y, nearest == y]).sum(1)

    @property
    def mismatches(self) -> int:
        """Rows whose classifier decision differs from the nearest class centre."""
        return int(self.decisions[0])

    @property
    def classifier_correct(self) -> int:
        """Rows the classifier labels correctly."""
        return int(self.decisions[1])

    @property
    def ncc_correct(self) -> int:
        """Rows the nearest class centre labels correctly."""
        return int(self.decisions[2])

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


class WithinProjection(Accumulator):
    """NC1 without the d×d scatter: v_kᵀ Σ_W v_k = (1/N) Σ_i (v_k·(h_i − μ_{y_i}))², streamed.

    Only the ≤ C−1 eigenvectors of Σ_B enter tr(Σ_W Σ_B^†), so once pass 1 has fixed the class means,
    pass 2 accumulates the squared projections of the within-class deviations onto them: N·d·C flops
    instead of the scatter's N·d². Exact (same value as nc1 from the full Σ_W, up to rounding).
    """

    reductions: ClassVar[Mapping[str, Reduction]] = {"squared": "sum", "samples": "sum"}

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

    def nc1(self) -> float:
        """tr(Σ_W Σ_B^†)/C from the accumulated projections of all the pass's samples."""
        return nc1_from_projections(self.squared, self.eigenvalues, self.samples, self.num_classes)
