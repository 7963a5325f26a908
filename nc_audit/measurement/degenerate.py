"""Classes whose rows cannot enter a cosine Gram: a zero-norm head row (a pruned class) or a centred class
mean equal to the global mean. A zero row has no direction: normalised, it leaves a zero on the Gram's
diagonal (trace < n, so MIR can exceed 1) or, from rounding, a random direction. Such a class is excluded
from the information metrics (H(K_W), H(K_M), MI, MIR, HDR: both Grams need the same classes) and from the
NC2 cosines of its own side, with the class named in a note; with fewer than two classes left the metric
is null. The metric kernels receive only the kept rows; their targets use the kept count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nc_audit.core.class_stats import ClassStats
from nc_audit.metrics.collapse import COINCIDE_RTOL, centred_means
from nc_audit.metrics.information import nc_targets
from nc_audit.metrics.sample_level import SampleLevelResult

#: A row is zero when its norm is at most this times the largest row norm of the same matrix.
ZERO_ROW_RTOL = 1e-10
#: Information keys computed over the kept classes (both Grams).
INFORMATION_KEYS = ("h_head", "h_means", "mi", "mir", "hdr")
#: Sample-level keys that use the head rows (K_Y): null when a present class has a zero head row.
SAMPLE_HEAD_KEYS = ("h_labels", "mi_samples", "mir_samples", "hdr_samples")


def zero_rows(X: torch.Tensor, floor: float = 0.0) -> torch.Tensor:
    """(n,) bool: rows of X (n, d) whose float64 norm is at most ZERO_ROW_RTOL × the largest row norm
    (and at most ``floor``, an absolute rounding level); every row when all are zero."""
    norms: torch.Tensor = torch.linalg.vector_norm(X.to(torch.float64), dim=1)  # (n,)
    if norms.numel() == 0:
        return torch.zeros(0, dtype=torch.bool, device=X.device)
    threshold = max(ZERO_ROW_RTOL * float(norms.max()), floor)
    return norms <= threshold


@dataclass(frozen=True)
class Degenerate:
    """Which of the present classes (by the head's class index) cannot enter the cosine Grams."""

    classes: tuple[int, ...]  # the present classes, in order
    zero_head: tuple[int, ...]
    zero_means: tuple[int, ...]

    @property
    def excluded(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.zero_head) | set(self.zero_means)))

    @property
    def kept_count(self) -> int:
        """Classes left for the information metrics."""
        return len(self.classes) - len(self.excluded)

    def mask(self, which: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """(C_p,) bool: the present classes NOT in ``which``."""
        drop = set(which)
        return torch.tensor([c not in drop for c in self.classes], dtype=torch.bool, device=device)

    def notes(self) -> list[str]:
        """One note naming the excluded classes and what they leave out (empty when none)."""
        parts = []
        if self.zero_head:
            parts.append(f"class{_plural(self.zero_head)} {_names(self.zero_head)} ha{_has(self.zero_head)} a "
                         "zero-norm head row")  # fmt: skip
        if self.zero_means:
            parts.append(f"class{_plural(self.zero_means)} {_names(self.zero_means)} ha{_has(self.zero_means)} "
                         "a class mean equal to the global mean (zero centred mean)")  # fmt: skip
        if not parts:
            return []
        left = self.kept_count
        tail = (
            f"h_head, h_means, mi, mir and hdr use the {left} other classes (targets for C = {left})"
            if left >= 2
            else "h_head, h_means, mi, mir and hdr are undefined (reported as null)"
        )
        return [
            f"{'; '.join(parts)}: a zero row has no direction, so it is left out of the cosine Grams: {tail}; "
            "the NC2 cosines of each side leave out its zero rows."
        ]


def _plural(items: tuple[int, ...]) -> str:
    return "es" if len(items) > 1 else ""


def _has(items: tuple[int, ...]) -> str:
    return "ve" if len(items) > 1 else "s"


def _names(items: tuple[int, ...]) -> str:
    return ", ".join(map(str, items[:10])) + (f" and {len(items) - 10} more" if len(items) > 10 else "")


def degenerate_classes(stats: ClassStats, head_weight: torch.Tensor) -> Degenerate:
    """The present classes of ``stats`` (full, over the head's classes) with a zero head row or a zero
    centred mean; head_weight: (C, d), every class of the head."""
    present = stats.present.nonzero().flatten()
    sub = stats.subset(stats.present)
    W = head_weight.to(torch.float64).to(present.device)[present]  # (C_p, d)
    M = centred_means(sub)  # (C_p, d)
    # rounding of the sums leaves a centred mean of about eps·|μ_c|, whatever the spread
    size = float(torch.linalg.vector_norm(sub.class_means, dim=1).max()) if sub.num_classes else 0.0
    classes = tuple(present.tolist())
    zero_w = zero_rows(W)
    zero_m = zero_rows(M, floor=COINCIDE_RTOL * size)
    if bool(zero_m.all()):  # the means coincide: every means-dependent metric is null already (collapse.py)
        zero_m = torch.zeros_like(zero_m)
    return Degenerate(
        classes,
        tuple(c for c, z in zip(classes, zero_w.tolist(), strict=True) if z),
        tuple(c for c, z in zip(classes, zero_m.tolist(), strict=True) if z),
    )


def kept_targets(targets: dict[str, float | None], found: Degenerate) -> dict[str, float | None]:
    """``targets`` (nc_targets of the present classes) with the information targets of the kept count."""
    if not found.excluded:
        return targets
    left = found.kept_count
    kept = nc_targets(left) if left >= 2 else dict.fromkeys(INFORMATION_KEYS)
    return {**targets, **{key: kept[key] for key in INFORMATION_KEYS}}


def without_head_samples(
    metrics: dict[str, float | None], notes: list[str], found: Degenerate
) -> tuple[dict[str, float | None], list[str]]:
    """Sample-level metrics and notes with the head-row metrics (K_Y) null when a present class has a zero
    head row: its samples' rows of K_Y are zero, so K_Y is no cosine Gram."""
    if not found.zero_head:
        return metrics, notes
    nulled = {**metrics, **{key: None for key in SAMPLE_HEAD_KEYS if key in metrics}}
    kept = [note for note in notes if not note.startswith(SAMPLE_HEAD_KEYS)]
    note = (
        f"{', '.join(SAMPLE_HEAD_KEYS)} are undefined (reported as null): the samples of class"
        f"{_plural(found.zero_head)} {_names(found.zero_head)} have a zero-norm head row, so the label Gram "
        "K_Y has zero rows."
    )
    return nulled, [*kept, note]


#: Sample-level keys that use the feature Gram K_Z.
SAMPLE_FEATURE_KEYS = ("h_samples", "mi_samples", "mir_samples", "hdr_samples", "mi_samples_onehot")


def zero_sample_rows(dual_gram: torch.Tensor, num_samples: int) -> int:
    """How many centred sample rows h_i − μ_G are exactly zero: each non-zero unit row adds 1 to the trace
    of ẐᵀẐ (d, d), a zero row adds 0."""
    return max(0, num_samples - round(float(torch.trace(dual_gram.to(torch.float64)))))


def without_zero_samples(result: SampleLevelResult, dual_gram: torch.Tensor, num_samples: int) -> None:
    """Null (in place, with a note) the K_Z metrics when some samples equal the global mean: their rows of
    K_Z are zero, so K_Z is no cosine Gram (its trace is below N) and MI could exceed H(K_Z)."""
    zero = zero_sample_rows(dual_gram, num_samples)
    if not zero:
        return
    result.metrics.update({key: None for key in SAMPLE_FEATURE_KEYS if key in result.metrics})
    result.notes[:] = [note for note in result.notes if not note.startswith(SAMPLE_FEATURE_KEYS)]
    result.notes.append(
        f"{', '.join(SAMPLE_FEATURE_KEYS)} are undefined (reported as null): {zero} of {num_samples} samples "
        "equal the global mean, so their rows of the feature Gram K_Z are zero."
    )
