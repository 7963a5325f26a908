"""What each metric key means and its family (for tables and plot panels); the keys ``--fail-on`` accepts.

Each value at Neural Collapse is :func:`nc_audit.metrics.information.nc_targets`. Only keys a report can
hold are listed: a rule on any other key is refused with the closest known key suggested.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    key: str
    family: str
    meaning: str


_ROWS = [
    ("nc1", "NC1", "within-class vs between-class spread, tr(Σ_W Σ_B†)/C"),
    ("nc1_cdnv", "NC1", "class-distance normalised variance"),
    ("nc2_equinorm_means", "NC2 norms", "spread of class-mean norms (std/mean)"),
    ("nc2_equinorm_head", "NC2 norms", "spread of head-row norms (std/mean)"),
    ("nc2_equiangular_means", "NC2 angles", "std of class-mean pair cosines"),
    ("nc2_equiangular_head", "NC2 angles", "std of head-row pair cosines"),
    ("nc2_maxangle_means", "NC2 angles", "mean |cos + 1/(C−1)|, class means"),
    ("nc2_maxangle_head", "NC2 angles", "mean |cos + 1/(C−1)|, head rows"),
    ("nc3", "NC3/NC4", "distance of normalised W and class means"),
    ("nc4", "NC3/NC4", "share: classifier ≠ nearest class mean"),
    ("h_head", "entropy", "entropy of the head-row Gram K_W"),
    ("h_means", "entropy", "entropy of the class-mean Gram K_M"),
    ("mi", "information", "mutual information of K_W and K_M"),
    ("mir", "information", "MI / min(H): compare with its NC value"),
    ("hdr", "information", "|H(K_W) − H(K_M)| / max(H)"),
    ("h_samples", "entropy", "entropy of the feature Gram K_Z (N×N)"),
    ("h_labels", "entropy", "entropy of the label Gram K_Y"),
    ("mi_samples", "information", "sample-level MI of K_Z and K_Y"),
    ("mir_samples", "information", "sample-level MIR of K_Z and K_Y"),
    ("hdr_samples", "information", "sample-level HDR of K_Z and K_Y"),
    ("mi_samples_onehot", "information", "sample-level MI of K_Z and the one-hot label Gram"),
    ("accuracy", "accuracy", "classifier accuracy on the measured split"),
]

METRICS: dict[str, MetricInfo] = {key: MetricInfo(key, family, meaning) for key, family, meaning in _ROWS}

#: The keys every class-level report holds (docs/METRICS.md), in display order.
CLASS_LEVEL_KEYS = tuple(key for key, *_ in _ROWS[:15])
SAMPLE_LEVEL_KEYS = ("h_samples", "h_labels", "mi_samples", "mir_samples", "hdr_samples", "mi_samples_onehot")
