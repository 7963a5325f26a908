"""A Report from one measurement's passes and metrics: what was measured, the numbers, their targets at
Neural Collapse, the conventions and the notes a reader needs."""

from __future__ import annotations

import math

from nc_audit.io.dumps.reader import read_attrs
from nc_audit.measurement.collect import Collected
from nc_audit.measurement.degenerate import degenerate_classes, kept_targets, without_head_samples
from nc_audit.measurement.describe import build_notes, conventions, undefined_notes
from nc_audit.metrics.information import InformationResult, nc_targets, sample_level_targets
from nc_audit.metrics.routes import ClassRoutes
from nc_audit.report.model import Report


def build_report(
    collected: Collected,
    metrics: dict[str, float | None],
    class_level: tuple[ClassRoutes, InformationResult] | None = None,
    *,
    step: int | None = None,
    label: str | None = None,
) -> Report:
    """The Report of one measurement from its passes and its metrics; ``class_level`` (the routes and
    the information result of :func:`nc_audit.measurement.compute.batched_class_level`) adds the routes to
    the conventions and the SLQ error bars to the details. ``step`` (default: the checkpoint's) and
    ``label`` name a record of a trajectory (a Monitor's)."""
    inputs, stats = collected.inputs, collected.stats
    sub = stats.subset(stats.present)
    C, d = sub.num_classes, sub.feature_dim
    found = degenerate_classes(stats, inputs.head.weight)
    targets = kept_targets(nc_targets(C), found)
    min_samples = collected.class_set.min_samples if collected.class_set is not None else 1
    notes = [*inputs.notes, *build_notes(stats, C, d, inputs.head, metrics, min_samples)]
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
    stated = _class_conventions(
        conventions(inputs.head, inputs.means_split, inputs.decisions_split), collected, class_level
    )
    details = _details(collected)
    if class_level is not None:
        details["class_level"] = _class_details(*class_level)
        notes += _slq_notes(class_level[1])
    return Report(
        checkpoint=inputs.head_origin,
        features={
            "path": None if inputs.decisions_split.memory is not None else str(inputs.decisions_split.path),
            "split": inputs.decisions_split.split or "all",
            "num_samples": inputs.decisions_split.num_samples,
            "feature_dim": d,
            "num_classes": C,
            "means_split": inputs.means_split.split or "all",
            "means_samples": sub.num_samples,
            "dtype": inputs.decisions_split.feature_dtype,
        },
        conventions={
            **stated,
            **({"decisions": collected.counter.subset} if collected.counter.subset else {}),
        },
        metrics=metrics,
        targets=targets,
        notes=notes,
        details=details,
        step=step if step is not None else _origin_step(inputs.head_origin.get("step")),
        label=label,
    )


def _origin_step(value: object) -> int | None:
    """The checkpoint's step as its origin records it (an int, or absent)."""
    return value if isinstance(value, int) else None


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


def _class_conventions(
    base: dict, collected: Collected, class_level: tuple[ClassRoutes, InformationResult] | None
) -> dict:
    """The conventions with the class set (--min-class-samples) and the class-level routes."""
    result = dict(base)
    if collected.class_set is not None:
        result["class_set"] = collected.class_set.convention()
    if class_level is not None:
        routes, information = class_level
        result.update(routes.conventions())
        if information.probes is not None:
            result["class_slq"] = (
                f"{information.probes} Rademacher probes x at most {information.steps} Lanczos steps, "
                "half-width of the 95% interval beside MI and MIR"
            )
    return result


def _class_details(routes: ClassRoutes, information: InformationResult) -> dict:
    details: dict = {
        "routes": {"entropies": routes.entropies, "joint": routes.joint, "pairs": routes.pairwise},
        "interval_95": dict(information.interval),
    }
    if routes.slq_matvec is not None:
        details["routes"]["slq_matvec"] = routes.slq_matvec
    if routes.tile is not None:
        details["routes"]["tile"] = routes.tile
    if information.probes is not None:
        details["slq"] = {"probes": information.probes, "lanczos_steps": information.steps}
    return details


def _slq_notes(information: InformationResult) -> list[str]:
    """A note naming the estimate when H(K_W∘K_M) came from SLQ."""
    if "mi" not in information.interval:
        return []
    return [
        f"H(K_W∘K_M) was estimated by stochastic Lanczos quadrature ({information.probes} probes): MI and MIR "
        f"carry a 95% interval (MI ±{information.interval['mi']:.2g}); H(K_W), H(K_M) and HDR are exact."
    ]
