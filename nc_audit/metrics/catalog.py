"""What each metric key means, its family (for tables and plot panels) and which way is "closer to NC"."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    key: str
    family: str
    meaning: str


_ROWS = [
    ("nc1", "NC1", "within-class variability vs between-class spread, tr(Σ_W Σ_B†)/C"),
    ("nc1_cdnv", "NC1", "class-distance normalised variance (Galanti et al.)"),
    ("nc2_equinorm_means", "NC2 norms", "spread of centred class-mean norms (std/mean)"),
    ("nc2_equinorm_head", "NC2 norms", "spread of head-row norms (std/mean)"),
    ("nc2_equiangular_means", "NC2 angles", "std of pairwise cosines of centred class means"),
    ("nc2_equiangular_head", "NC2 angles", "std of pairwise cosines of head rows"),
    ("nc2_maxangle_means", "NC2 angles", "mean |cos + 1/(C−1)| of centred class means"),
    ("nc2_maxangle_head", "NC2 angles", "mean |cos + 1/(C−1)| of head rows"),
    ("nc3", "NC3/NC4", "self-duality: distance of normalised head and class means"),
    ("nc4", "NC3/NC4", "share of samples where classifier ≠ nearest class mean"),
    ("h_head", "entropy", "matrix entropy of the head-row Gram K_W"),
    ("h_means", "entropy", "matrix entropy of the class-mean Gram K_M"),
    ("mi", "information", "matrix mutual information of K_W and K_M"),
    ("mir", "information", "mutual-information ratio MI / min(H) — compare with its NC value"),
    ("hdr", "information", "entropy difference ratio |H(K_W) − H(K_M)| / max(H)"),
    ("h_samples", "entropy", "matrix entropy of the centred-feature Gram K_Z (N×N, never formed)"),
    ("h_labels", "entropy", "matrix entropy of the label Gram K_Y (head rows of the labels)"),
    ("mi_samples", "information", "sample-level MI of K_Z and K_Y"),
    ("mir_samples", "information", "sample-level MIR of K_Z and K_Y"),
    ("hdr_samples", "information", "sample-level HDR of K_Z and K_Y"),
    ("mi_samples_onehot", "information", "sample-level MI of K_Z and the one-hot label Gram"),
    ("accuracy", "accuracy", "classifier accuracy on the measured split"),
    ("accuracy_train", "accuracy", "classifier accuracy on the training split"),
    ("accuracy_test", "accuracy", "classifier accuracy on the test split"),
]

METRICS: dict[str, MetricInfo] = {key: MetricInfo(key, family, meaning) for key, family, meaning in _ROWS}

#: The keys every class-level report holds (METRICS.md), in display order.
CLASS_LEVEL_KEYS = tuple(key for key, *_ in _ROWS[:15])
SAMPLE_LEVEL_KEYS = ("h_samples", "h_labels", "mi_samples", "mir_samples", "hdr_samples", "mi_samples_onehot")
