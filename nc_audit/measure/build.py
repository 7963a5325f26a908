"""A Report from one measurement's passes and metrics: what was measured, the numbers, their targets at
Neural Collapse, the conventions and the notes a reader needs."""

from __future__ import annotations

import math

from nc_audit.io.dumps import read_attrs
from nc_audit.measure.collect import Collected
from nc_audit.measure.degenerate import degenerate_classes, kept_targets, without_head_samples
from nc_audit.measure.describe import build_notes, conventions, undefined_notes
from nc_audit.metrics.information import nc_targets, sample_level_targets
from nc_audit.report.model import Report


def build_report(collected: Collected, metrics: dict[str, float | None]) -> Report:
    """The Report of one measurement from its passes and its metrics."""
    inputs, stats = collected.inputs, collected.stats
    sub = stats.subset(stats.present)
    C, d = sub.num_classes, sub.feature_dim
    found = degenerate_classes(stats, inputs.head.weight)
    targets = kept_targets(nc_targets(C), found)
    notes = [*inputs.notes, *build_notes(stats, C, d, inputs.head, metrics)]
    if collected.feature_scale != 1.0:
        notes.append(
            f"The float64 features were read multiplied by 2^{math.frexp(collected.feature_scale)[1] - 1} "
            "(their magnitude would overflow or underflow float64 squares); every metric is scale-invariant."
        )
    if collected.sample_level is not None:
        sample = collected.sample_level
        sample_metrics, sample_notes = without_head_samples(sample.metrics, sample.notes, found)
        metrics = {**metrics, **sample_metrics}
        targets.update(sample_level_targets(C))
        notes += sample_notes
        notes += undefined_notes(metrics, notes)
    return Report(
        checkpoint=inputs.head_origin,
        features={
            "path": str(inputs.decisions_split.path),
            "split": inputs.decisions_split.split or "all",
            "num_samples": inputs.decisions_split.num_samples,
            "feature_dim": d,
            "num_classes": C,
            "means_split": inputs.means_split.split or "all",
            "means_samples": sub.num_samples,
            "dtype": inputs.decisions_split.feature_dtype,
        },
        conventions={
            **conventions(inputs.head, inputs.means_split, inputs.decisions_split),
            **({"decisions": collected.counter.subset} if collected.counter.subset else {}),
        },
        metrics=metrics,
        targets=targets,
        notes=notes,
        details=_details(collected),
        step=inputs.head_origin.get("step"),
    )


def _details(collected: Collected) -> dict:
    counter = collected.counter
    details: dict = {
        "accuracy": counter.accuracy,
        "ncc_accuracy": counter.ncc_accuracy,
        "device": str(collected.device),
    }
    if collected.sample_level is not None:
        result = collected.sample_level
        details["sample_level"] = {
            "route": result.route,
            "interval_95": result.interval,
            "probes": result.probes,
        }
    if collected.cache_hit is not None:
        details["feature_cache"] = {"path": str(collected.dump), "hit": collected.cache_hit}
        details["dataset"] = read_attrs(collected.dump).get("dataset")
    return details
