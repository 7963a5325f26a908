"""The MIR/HDR batch regulariser in its two forms: towards collapse (``nc``, the default) or ``max``.

docs/METRICS.md, "Losses — MIR/HDR regulariser forms", gives the formulas and the reason for the default.
For a batch of features z_i (B, d) with labels y_i and head rows w_c (C, d):

- K_Y = Gram of (w_{y_1}, …, w_{y_B}); with ``head="detached"`` the rows carry no gradient (the
  regulariser moves the features only), with ``head="trainable"`` they do.
- ``target="max"`` (the form shipped first, kept for comparison): K_Z = Gram of z_i − (batch mean),
  R = −λ_mir·MIR(K_Z, K_Y) + λ_hdr·HDR(K_Z, K_Y).
- ``target="nc"``: K_Z = Gram of z_i − (mean of the batch's class means), and
  R = λ_mir·|MIR(K_Z, K_Y) − MIR*| + λ_hdr·|HDR(K_Z, K_Y) − HDR*|, where MIR*, HDR* are the values the
  same batch (same labels, same centring) takes at exact collapse: z_i and w_c on a simplex ETF.
  With all C classes in the batch HDR* = 0 and MIR* is MIR_NC(C) re-weighted by the batch's class
  counts (exactly MIR_NC(C) for a balanced batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from nc_audit.core.errors import InputError
from nc_audit.core.linalg import unit_rows
from nc_audit.train.matrix_entropy import (
    EIG_FLOOR,
    MatrixInformation,
    check_matrix_shapes,
    entropy_of_eigenvalues,
    information_from_entropies,
    matrix_information,
)

Target = Literal["nc", "max"]
Head = Literal["detached", "trainable"]
#: The accepted values, default first.
TARGETS: tuple[Target, ...] = ("nc", "max")
HEADS: tuple[Head, ...] = ("detached", "trainable")


@dataclass(frozen=True)
class RegularizerForm:
    """The weights of the MIR and HDR terms, the target (``nc`` or ``max``) and whether the head trains."""

    mir_weight: float = 0.0
    hdr_weight: float = 0.0
    target: Target = "nc"
    head: Head = "detached"

    def validate(self) -> None:
        """InputError (one line) for a negative or non-finite weight or an unknown target or head."""
        for name, value in (("--mir-weight", self.mir_weight), ("--hdr-weight", self.hdr_weight)):
            if not (math.isfinite(value) and value >= 0.0):
                raise InputError(f"{name} must be a finite number >= 0, got {value}")
        if self.target not in TARGETS:
            raise InputError(f"--regularizer-target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.head not in HEADS:
            raise InputError(f"--regularizer-head must be one of {', '.join(HEADS)}, got {self.head!r}")

    @property
    def active(self) -> bool:
        """Whether the regulariser contributes to the loss at all."""
        return self.mir_weight > 0.0 or self.hdr_weight > 0.0

    def describe(self) -> str:
        """``nc/detached`` — the short name used in tables."""
        return f"{self.target}/{self.head}"


def simplex_etf(num_classes: int, *, device: torch.device | None = None) -> torch.Tensor:
    """C unit vectors in R^C with pairwise cosine −1/(C−1) summing to 0 (the simplex ETF). (C, C) float64."""
    C = num_classes
    if C < 2:
        raise InputError(f"a simplex ETF needs at least 2 classes, got {C}")
    eye = torch.eye(C, dtype=torch.float64, device=device)
    return math.sqrt(C / (C - 1)) * (eye - 1.0 / C)  # (C, C), unit rows


def batch_grams(
    features: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, target: Target
) -> tuple[torch.Tensor, torch.Tensor]:
    """(K_Z, K_Y), both (B, B) float64: the Gram of the centred features and of the label rows.

    ``target="max"`` centres by the batch mean (the first form), ``"nc"`` by the unweighted mean of the
    batch's class means, which is 0 at collapse whatever the class counts of the batch.
    """
    Z = features.to(torch.float64)  # (B, d)
    if target == "max":
        centre = Z.mean(0, keepdim=True)  # (1, d)
    else:
        classes, index = torch.unique(labels, return_inverse=True)  # (k,), (B,)
        sums = torch.zeros(classes.shape[0], Z.shape[1], dtype=Z.dtype, device=Z.device)  # (k, d)
        sums = sums.index_add(0, index, Z)
        counts = torch.bincount(index, minlength=classes.shape[0]).to(Z.dtype)  # (k,)
        centre = (sums / counts.unsqueeze(1)).mean(0, keepdim=True)  # (1, d)
    Uz = unit_rows(Z - centre)  # (B, d)
    Uy = unit_rows(rows.to(torch.float64)[labels])  # (B, d)
    return Uz @ Uz.T, Uy @ Uy.T


def collapsed_reference(
    labels: torch.Tensor, num_classes: int, target: Target = "nc", *, eps_eig: float = EIG_FLOOR
) -> MatrixInformation:
    """MI, MIR and HDR of the batch at exact collapse: features and head rows on the simplex ETF of C
    classes, the batch's labels and centring. No gradient. For a balanced batch holding every class,
    MIR = MIR_NC(C) (docs/METRICS.md, "Values at Neural Collapse") and HDR = 0 with the ``nc`` centring.

    Exact and small: a B×B Gram of k distinct unit vectors g_c repeated n_c times has the nonzero
    eigenvalues of K/B of the k×k matrix diag(√p)·G·diag(√p), p_c = n_c/B (and K1 ∘ K2 repeats the
    same way), so three k×k eigenproblems replace three B×B ones.
    """
    with torch.no_grad():
        etf = simplex_etf(num_classes, device=labels.device)  # (C, C)
        classes, counts = torch.unique(labels, return_counts=True)  # (k,), (k,)
        share = counts.to(torch.float64) / labels.shape[0]  # (k,)
        rows = etf[classes]  # (k, C)
        centre = rows.mean(0, keepdim=True) if target == "nc" else share @ rows  # (1, C)
        Uz, Uy = unit_rows(rows - centre), unit_rows(rows)  # (k, C) x2
        G_Z, G_Y = Uz @ Uz.T, Uy @ Uy.T  # (k, k) x2
        weight = share.sqrt()  # (k,)
        S = torch.stack((G_Z, G_Y, G_Z * G_Y)) * weight[:, None] * weight[None, :]  # (3, k, k)
        H = entropy_of_eigenvalues(torch.linalg.eigvalsh(S), 1.0, eps_eig=eps_eig)  # (3,)
        return information_from_entropies(H[0], H[1], H[2])


def mir_hdr_regulariser(
    features: torch.Tensor,
    labels: torch.Tensor,
    head_weight: torch.Tensor,
    mir_weight: float,
    hdr_weight: float,
    *,
    target: Target = "nc",
    head: Head = "detached",
    eps_eig: float = EIG_FLOOR,
) -> torch.Tensor:
    """The batch regulariser R of the module docstring, in the features' dtype. Scalar.

    features: (B, d), labels: (B,) in 0..C−1, head_weight: (C, d). Differentiable with respect to the
    features, and to head_weight when ``head="trainable"``. In the ``nc`` form a batch holding fewer than
    3 classes gives R = 0: at collapse its centred class means are one point or two opposite ones, so
    H(K_Z) = 0 and the collapsed MIR is undefined (the C = 2 case of docs/METRICS.md).
    """
    RegularizerForm(mir_weight, hdr_weight, target, head).validate()
    check_matrix_shapes(features, labels, head_weight, "head_weight")
    rows = head_weight if head == "trainable" else head_weight.detach()
    K_Z, K_Y = batch_grams(features, labels, rows, target)
    info = matrix_information(K_Z, K_Y, eps_eig=eps_eig)
    if target == "max":
        value = -mir_weight * info.mir + hdr_weight * info.hdr
    elif torch.unique(labels).numel() < 3:  # the collapsed values are undefined (docs/METRICS.md, C = 2)
        value = 0.0 * info.mi
    else:
        goal = collapsed_reference(labels, int(head_weight.shape[0]), target, eps_eig=eps_eig)
        value = mir_weight * (info.mir - goal.mir).abs() + hdr_weight * (info.hdr - goal.hdr).abs()
    return value.to(features.dtype)


def regulariser_of(
    form: RegularizerForm, features: torch.Tensor, labels: torch.Tensor, head_weight: torch.Tensor
) -> torch.Tensor:
    """:func:`mir_hdr_regulariser` with the weights, target and head of ``form``."""
    return mir_hdr_regulariser(
        features, labels, head_weight, form.mir_weight, form.hdr_weight, target=form.target, head=form.head
    )
