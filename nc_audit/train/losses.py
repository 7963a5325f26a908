"""Differentiable losses for fine-tuning: cross-model alignment (CMA) and MIR/HDR regularisers.

Definitions: docs/METRICS.md, section "Losses". CMA follows arXiv 2409.16767; the matrix-information terms
follow Song et al. (ICML 2024), arXiv 2406.03999. The small Gram matrices and their eigenvalues are
computed in float64 and the results cast back to the features' dtype; the code runs unchanged on CPU
and CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nc_audit.core.errors import InputError
from nc_audit.core.linalg import unit_rows
from nc_audit.train.matrix_entropy import (
    EIG_FLOOR,
    ENTROPY_FLOOR,
    MatrixInformation,
    check_matrix_shapes,
    differentiable_matrix_entropy,
    entropy_of_eigenvalues,
    matrix_information,
)
from nc_audit.train.ranges import CMA_WEIGHT, HDR_WEIGHT, LABEL_SMOOTHING, MIR_WEIGHT
from nc_audit.train.regularizer import Head, RegularizerForm, Target, mir_hdr_regulariser

__all__ = [
    "EIG_FLOOR",
    "ENTROPY_FLOOR",
    "LossParts",
    "MatrixInformation",
    "RegularizerForm",
    "classification_loss",
    "cma_loss",
    "differentiable_matrix_entropy",
    "entropy_of_eigenvalues",
    "matrix_information",
    "mir_hdr_regulariser",
    "total_loss",
]


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
    check_matrix_shapes(features, labels, anchors, "anchors")
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
    regularizer_target: Target = "nc",
    regularizer_head: Head = "detached",
) -> LossParts:
    """L = (1 − λ)·L_CE + λ·L_CMA + R (docs/METRICS.md, "Losses").

    R is the MIR/HDR regulariser with weights λ_mir, λ_hdr in the form ``regularizer_target`` (``nc``:
    distance to the collapsed values; ``max``: −λ_mir·MIR + λ_hdr·HDR) with the head rows detached or
    trainable (nc_audit.train.regularizer).

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
        reg = mir_hdr_regulariser(features, labels, head_weight, mir_weight, hdr_weight,
                                  target=regularizer_target, head=regularizer_head)  # fmt: skip
        total = total + reg
    else:
        reg = torch.zeros((), dtype=total.dtype, device=total.device)
    return LossParts(total=total, ce=ce, cma=cma, reg=reg)
