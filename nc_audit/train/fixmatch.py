"""One FixMatch step (Sohn et al. 2020), with the MIR/HDR regularisers on labels and confident pseudo-labels.

For a labeled batch (x_l, y_l) and an unlabeled batch seen twice (weak view x_w, strong view x_s):

- one forward pass of the concatenation [x_l, x_w, x_s] (BatchNorm sees one batch, as in FixMatch);
- pseudo-labels ŷ_j = argmax_c p_jc and mask m_j = [max_c p_jc ≥ τ], p = softmax of the weak view's
  logits, without gradient;
- L_s = CE(logits_l, y_l);  L_u = (1/μB) Σ_j m_j · CE(logits_s,j, ŷ_j) (mean over the whole unlabeled
  batch, FixMatch's normalisation);
- the MIR/HDR regulariser R in the chosen form (nc_audit.train.regularizer: ``nc``, the default, pulls
  MIR and HDR to their values at collapse; ``max`` is −λ_mir·MIR + λ_hdr·HDR; our formulation) on the features of the labeled samples and of the confident strong views, with
  their labels — the pseudo-labels ŷ_j for the unlabeled ones — supplying the head rows of K_Y;
- L = L_s + λ_u·L_u + regulariser.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nc_audit.models.hooks import find_head_module, forward_with_features
from nc_audit.train.losses import classification_loss
from nc_audit.train.regularizer import Head, Target, mir_hdr_regulariser


@dataclass(frozen=True)
class FixMatchStep:
    """The loss of one step and its parts (scalars), the mask and the pseudo-labels of the unlabeled batch."""

    total: Tensor
    supervised: Tensor
    unsupervised: Tensor
    reg: Tensor
    mask: Tensor  # (U,) bool: confidence ≥ τ
    pseudo_labels: Tensor  # (U,) int64: argmax of the weak view


def pseudo_labels(weak_logits: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """(argmax_c p, max_c p ≥ τ) with p = softmax(weak_logits) in float64, no gradient. (U, C) → (U,), (U,)."""
    with torch.no_grad():
        probabilities = torch.softmax(weak_logits.detach().to(torch.float64), dim=1)  # (U, C)
        confidence, labels = probabilities.max(dim=1)  # (U,), (U,)
    return labels, confidence >= threshold


def fixmatch_step(
    model: nn.Module,
    labeled: Tensor,
    labels: Tensor,
    weak: Tensor,
    strong: Tensor,
    *,
    threshold: float = 0.95,
    unlabeled_weight: float = 1.0,
    mir_weight: float = 0.0,
    hdr_weight: float = 0.0,
    head_name: str | None = None,
    regularizer_target: Target = "nc",
    regularizer_head: Head = "detached",
) -> FixMatchStep:
    """The FixMatch loss of one batch (module docstring). labeled (B, ...), labels (B,), weak and strong
    (U, ...) views of the same unlabeled samples. With ``unlabeled_weight`` 0 the unlabeled views are not
    run at all (supervised training on the labeled batch)."""
    B = labeled.shape[0]
    use_unlabeled = unlabeled_weight > 0.0
    inputs = torch.cat([labeled, weak, strong]) if use_unlabeled else labeled
    logits, features = forward_with_features(model, inputs, head_name)  # (B+2U, C), (B+2U, d)
    supervised = classification_loss(logits[:B], labels)
    if use_unlabeled:
        U = weak.shape[0]
        guessed, mask = pseudo_labels(logits[B : B + U], threshold)
        strong_logits = logits[B + U :]  # (U, C)
        per_sample = torch.nn.functional.cross_entropy(strong_logits, guessed, reduction="none")  # (U,)
        unsupervised = (per_sample * mask.to(per_sample.dtype)).mean()
        reg_features = torch.cat([features[:B], features[B + U :][mask]])
        reg_labels = torch.cat([labels, guessed[mask]])
    else:
        empty = torch.zeros(0, dtype=torch.long, device=labels.device)
        guessed, mask = empty, empty.bool()
        unsupervised = torch.zeros((), dtype=supervised.dtype, device=supervised.device)
        reg_features, reg_labels = features[:B], labels
    total = supervised + unlabeled_weight * unsupervised
    reg = torch.zeros((), dtype=total.dtype, device=total.device)
    if (mir_weight > 0.0 or hdr_weight > 0.0) and reg_labels.shape[0] > 1:
        head = find_head_module(model, head_name)[1]
        reg = mir_hdr_regulariser(reg_features, reg_labels, head.weight, mir_weight, hdr_weight,
                                  target=regularizer_target, head=regularizer_head)  # fmt: skip
        total = total + reg
    return FixMatchStep(total, supervised, unsupervised, reg, mask, guessed)
