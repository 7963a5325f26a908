"""Differentiable losses for fine-tuning: cross-model alignment (CMA) and MIR/HDR regularisers.

Definitions: docs/METRICS.md, section "Losses". CMA follows arXiv 2409.16767; the matrix-information terms
follow Song et al. (ICML 2024), arXiv 2406.03999. The small Gram matrices and their eigenvalues are
computed in float64 and the results cast back to the features' dtype; the code runs unchanged on CPU
and CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from nc_audit.core.errors import InputError
from nc_audit.core.linalg import unit_rows
from nc_audit.train.ranges import CMA_WEIGHT, HDR_WEIGHT, LABEL_SMOOTHING, MIR_WEIGHT

#: Floor for the normalised eigenvalues λ = eig(K)/n inside −Σ λ log λ: below it a term counts as 0 and
#: carries no gradient (d(−λ log λ)/dλ = −log λ − 1 is infinite at λ = 0).
EIG_FLOOR = 1e-12

#: Floor for the denominators min(H1, H2) and max(H1, H2) of MIR and HDR (a batch of one class has H = 0).
ENTROPY_FLOOR = 1e-12


def entropy_of_eigenvalues(
    eigenvalues: torch.Tensor, size: torch.Tensor | float, *, eps_eig: float = EIG_FLOOR
) -> torch.Tensor:
    """Differentiable −Σ_k λ_k log λ_k with λ = eigenvalues / size, batched. (..., m) -> (...).

    docs/METRICS.md, matrix entropy: λ are the eigenvalues of K/n, terms with λ_k = 0 are 0. Terms with
    λ_k <= eps_eig (padding, round-off, rank deficiency) count as 0 and get a zero gradient, so the
    gradient stays finite; the value changes by at most eps_eig·log(1/eps_eig) per such term.
    ``size`` is n, a float or a tensor broadcastable to (..., 1).
    """
    lam = eigenvalues.to(torch.float64) / size  # (..., m)
    above = lam > eps_eig  # (..., m)
    # Clamping before entr keeps the masked-out branch's gradient finite (0·∞ would be NaN in where).
    terms = torch.special.entr(lam.clamp_min(eps_eig))  # (..., m)
    return torch.where(above, terms, torch.zeros_like(terms)).sum(-1)


def differentiable_matrix_entropy(K: torch.Tensor, *, eps_eig: float = EIG_FLOOR) -> torch.Tensor:
    """H(K) = −tr((K/n) log(K/n)) for a PSD K with unit diagonal, differentiable, batched. (..., n, n) -> (...).

    Song et al. (2024), arXiv 2406.03999, eq. (1); docs/METRICS.md. One batched eigvalsh in float64; its
    backward needs only the eigenvectors, so repeated eigenvalues give finite gradients.
    """
    n = K.shape[-1]
    eigenvalues = torch.linalg.eigvalsh(K.to(torch.float64))  # (..., n)
    return entropy_of_eigenvalues(eigenvalues, float(n), eps_eig=eps_eig)


def _check_matrix_shapes(features: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, name: str) -> None:
    """Raise InputError unless features (B, d), labels (B,) in 0..C−1 and rows (C, d) fit together."""
    if features.ndim != 2:
        raise InputError(f"features must be a (B, d) matrix, got shape {tuple(features.shape)}")
    if labels.ndim != 1 or labels.shape[0] != features.shape[0]:
        raise InputError(
            f"labels must have shape ({features.shape[0]},) to match features {tuple(features.shape)}, "
            f"got {tuple(labels.shape)}"
        )
    if rows.ndim != 2 or rows.shape[1] != features.shape[1]:
        raise InputError(
            f"{name} must have shape (C, {features.shape[1]}) to match features {tuple(features.shape)}, "
            f"got {tuple(rows.shape)}"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= rows.shape[0]):
        raise InputError(
            f"labels must lie in 0..{rows.shape[0] - 1} (the rows of {name}), "
            f"got values in {int(labels.min())}..{int(labels.max())}"
        )


def cma_loss(
    features: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor, *, eps_eig: float = EIG_FLOOR
) -> torch.Tensor:
    """Cross-model alignment loss L_CMA = mean over classes c in the batch of H̃(X_c). Scalar.

    arXiv 2409.16767; docs/METRICS.md, "Losses". X_c = {normalised features of class c} ∪ {normalised
    anchor a_c}, H̃(X_c) = H(Gram(X_c)) / log|X_c| ∈ [0, 1]; a class with one sample has |X_c| = 2.
    All classes go through one batched eigvalsh: each set is padded with zero rows to the largest set
    size m, which adds zero eigenvalues only, and each class is normalised by its own |X_c|.

    features: (B, d), labels: (B,) integers in 0..C−1, anchors: (C, d). Differentiable with respect
    to features and anchors; returned in the features' dtype.
    """
    _check_matrix_shapes(features, labels, anchors, "anchors")
    if features.shape[0] == 0:
        raise InputError("cma_loss needs at least one sample in the batch, got an empty batch")
    classes, class_index, counts = torch.unique(
        labels, return_inverse=True, return_counts=True
    )  # (k,) (B,) (k,)
    k = classes.shape[0]
    m = int(counts.max()) + 1  # largest |X_c|: the samples of a class plus its anchor

    # Slot of each sample inside its class's set: its rank among the samples of the same class.
    order = torch.argsort(class_index, stable=True)  # (B,)
    starts = torch.cumsum(counts, 0) - counts  # (k,)
    slots = torch.empty_like(order)  # (B,)
    slots[order] = torch.arange(order.shape[0], device=labels.device) - starts[class_index[order]]

    U = unit_rows(features)  # (B, d), float64
    A = unit_rows(anchors[classes])  # (k, d), float64
    X = torch.zeros(k, m, features.shape[1], dtype=torch.float64, device=features.device)  # (k, m, d)
    X = X.index_put((class_index, slots), U)  # (k, m, d)
    X = X.index_put((torch.arange(k, device=labels.device), counts), A)  # (k, m, d), anchor after samples

    G = X @ X.transpose(-1, -2)  # (k, m, m), zero rows/columns for the padding
    eigenvalues = torch.linalg.eigvalsh(G)  # (k, m)
    sizes = (counts + 1).to(torch.float64)  # (k,), |X_c| = trace of G_c
    H = entropy_of_eigenvalues(eigenvalues, sizes.unsqueeze(-1), eps_eig=eps_eig)  # (k,)
    return (H / torch.log(sizes)).mean().to(features.dtype)


class MatrixInformation(NamedTuple):
    """Matrix mutual information and its two ratios for a pair of Gram matrices (tensors, batched)."""

    mi: torch.Tensor
    mir: torch.Tensor
    hdr: torch.Tensor


def matrix_information(
    K1: torch.Tensor, K2: torch.Tensor, *, eps_eig: float = EIG_FLOOR
) -> MatrixInformation:
    """Differentiable MI, MIR and HDR of two PSD matrices with unit diagonal. (..., n, n) x2 -> (...) x3.

    Song et al. (2024), arXiv 2406.03999; docs/METRICS.md:
    MI = H(K1) + H(K2) − H(K1 ∘ K2), MIR = MI / min(H1, H2), HDR = |H1 − H2| / max(H1, H2).
    The three entropies come from one batched eigvalsh. MIR and HDR are undefined when an entropy is
    0; here the denominators are floored at ENTROPY_FLOOR (then MI = 0 too), so a loss stays finite.
    """
    if K1.shape != K2.shape or K1.ndim < 2 or K1.shape[-1] != K1.shape[-2]:
        raise InputError(
            f"matrix_information needs two square matrices of the same shape, "
            f"got {tuple(K1.shape)} and {tuple(K2.shape)}"
        )
    K1 = K1.to(torch.float64)  # (..., n, n)
    K2 = K2.to(torch.float64)  # (..., n, n)
    H1, H2, H12 = differentiable_matrix_entropy(torch.stack((K1, K2, K1 * K2)), eps_eig=eps_eig)  # (...) x3
    mi = H1 + H2 - H12
    mir = mi / torch.minimum(H1, H2).clamp_min(ENTROPY_FLOOR)
    hdr = (H1 - H2).abs() / torch.maximum(H1, H2).clamp_min(ENTROPY_FLOOR)
    return MatrixInformation(mi=mi, mir=mir, hdr=hdr)


def mir_hdr_regulariser(
    features: torch.Tensor,
    labels: torch.Tensor,
    head_weight: torch.Tensor,
    mir_weight: float,
    hdr_weight: float,
    *,
    eps_eig: float = EIG_FLOOR,
) -> torch.Tensor:
    """Batch regulariser −λ_mir·MIR(K_Z, K_Y) + λ_hdr·HDR(K_Z, K_Y). Scalar, features' dtype.

    OUR formulation: arXiv 2406.03999 states that MIR and HDR are used as loss terms, but its exact
    form was not confirmed (docs/METRICS.md, "Losses"). K_Z = Gram of the batch features centred by the
    batch mean, K_Y = Gram of the head rows (w_{y_1}, …, w_{y_B}) of the batch labels; both are B×B.
    Differentiable with respect to features and head_weight. features: (B, d), labels: (B,),
    head_weight: (C, d).
    """
    _check_matrix_shapes(features, labels, head_weight, "head_weight")
    Z = features.to(torch.float64)  # (B, d)
    Z = Z - Z.mean(0, keepdim=True)  # (B, d), centred by the batch mean
    Uz = unit_rows(Z)  # (B, d)
    Uy = unit_rows(head_weight[labels])  # (B, d)
    K_Z = Uz @ Uz.T  # (B, B)
    K_Y = Uy @ Uy.T  # (B, B)
    info = matrix_information(K_Z, K_Y, eps_eig=eps_eig)
    return (-mir_weight * info.mir + hdr_weight * info.hdr).to(features.dtype)


def classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy of logits (B, C) against labels (B,), with label smoothing ε. Scalar.

    The target of sample i is q = (1 − ε)·onehot(y_i) + ε/C·1 (Szegedy et al. 2016; PyTorch's
    ``label_smoothing``), so L_i = −Σ_c q_c log softmax(z_i)_c. ε = 0 is the plain cross-entropy, the
    very same computation (no smoothing term is formed).
    """
    LABEL_SMOOTHING.check(label_smoothing)
    if label_smoothing == 0.0:
        return torch.nn.functional.cross_entropy(logits, labels)
    return torch.nn.functional.cross_entropy(logits, labels, label_smoothing=label_smoothing)


@dataclass(frozen=True)
class LossParts:
    """The fine-tuning loss and its parts (scalar tensors): total = (1 − λ)·ce + λ·cma + reg."""

    total: torch.Tensor
    ce: torch.Tensor
    cma: torch.Tensor
    reg: torch.Tensor


def total_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    features: torch.Tensor,
    anchors: torch.Tensor,
    *,
    cma_weight: float,
    mir_weight: float = 0.0,
    hdr_weight: float = 0.0,
    head_weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> LossParts:
    """L = (1 − λ)·L_CE + λ·L_CMA − λ_mir·MIR(K_Z, K_Y) + λ_hdr·HDR(K_Z, K_Y) (docs/METRICS.md, "Losses").

    logits: (B, C), labels: (B,), features: (B, d), anchors: (C, d); λ = cma_weight ∈ [0, 1].
    L_CE is :func:`classification_loss` with ``label_smoothing`` ε ∈ [0, 1] (0: the plain loss).
    head_weight (C, d) is needed when mir_weight or hdr_weight is positive. With λ = 0 the CMA part
    is still reported but computed without a graph; with no regulariser weight reg is 0.
    """
    CMA_WEIGHT.check(cma_weight)  # the ranges FinetuneConfig checks too, with the same messages
    MIR_WEIGHT.check(mir_weight)
    HDR_WEIGHT.check(hdr_weight)
    if logits.ndim != 2:
        raise InputError(f"logits must be a (B, C) matrix, got shape {tuple(logits.shape)}")
    if features.ndim != 2:
        raise InputError(f"features must be a (B, d) matrix, got shape {tuple(features.shape)}")
    expected = (logits.shape[1], features.shape[1])
    if tuple(anchors.shape) != expected:
        raise InputError(
            f"anchors have shape {tuple(anchors.shape)} but must be (C, d) = {expected} "
            f"to match logits {tuple(logits.shape)} and features {tuple(features.shape)}"
        )

    ce = classification_loss(logits, labels, label_smoothing)
    if cma_weight > 0.0:
        cma = cma_loss(features, labels, anchors)
        total = (1.0 - cma_weight) * ce + cma_weight * cma
    else:
        with torch.no_grad():
            cma = cma_loss(features, labels, anchors)
        total = ce

    if mir_weight > 0.0 or hdr_weight > 0.0:
        if head_weight is None:
            raise InputError("mir_weight or hdr_weight is positive, so total_loss needs head_weight (C, d)")
        if tuple(head_weight.shape) != expected:
            raise InputError(
                f"head_weight has shape {tuple(head_weight.shape)} but must be (C, d) = {expected}"
            )
        reg = mir_hdr_regulariser(features, labels, head_weight, mir_weight, hdr_weight)
        total = total + reg
    else:
        reg = torch.zeros((), dtype=total.dtype, device=total.device)
    return LossParts(total=total, ce=ce, cma=cma, reg=reg)
