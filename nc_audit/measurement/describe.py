"""What a report says about how its numbers were made: conventions and notes for the reader."""

from __future__ import annotations

import math

from nc_audit.core.class_stats import ClassStats
from nc_audit.io.checkpoints.load import Head
from nc_audit.io.dumps.reader import SplitInfo
from nc_audit.measurement.degenerate import degenerate_classes
from nc_audit.metrics.collapse import MEANS_DEPENDENT, means_coincide


def conventions(head: Head, means_split: SplitInfo, decisions_split: SplitInfo) -> dict:
    """The conventions a report states (docs/DESIGN.md: 'every report names its conventions')."""
    return {
        "global_mean": "sample-weighted",
        "between_class_cov": "classes weighted equally",
        "nc1": "tr(Sigma_W pinv(Sigma_B))/C, eigenpairs above 1e-10*max, at most C-1",
        "nc3": "squared Frobenius distance of Frobenius-normalised W and centred means",
        "nc4_bias": head.bias is not None,
        "std": "population",
        "gram": "cosine (rows normalised)",
        "entropy": "natural log, eigenvalues of K/n",
        "precision": "float64",
        "means_split": means_split.split or "all",
        "decisions_split": decisions_split.split or "all",
        **({"head_applied": head.applied} if head.applied else {}),
    }


def build_notes(
    stats: ClassStats, C: int, d: int, head: Head, metrics: dict, min_samples: int = 1
) -> list[str]:
    """Notes a reader needs: undefined ratios, impossible simplex ETF, absent classes (and, with
    ``min_samples`` > 1, those left out by --min-class-samples), zero head rows or centred means left
    out of the cosine Grams, missing bias."""
    found = degenerate_classes(stats, head.weight)
    notes = found.notes()
    coincide = means_coincide(stats.subset(stats.present))
    said = coincide or (bool(found.excluded) and found.kept_count < 2)  # the ratios' nulls already explained
    if C == 2:
        notes.append(
            "MIR is undefined for C = 2: the two centred class means are always opposite, so H(K_M) = 0 "
            "and MIR = MI/0 (reported as null)."
        )
    elif metrics.get("mir") is None and not said:
        notes.append("MIR is undefined here: one of the two Gram entropies is 0 (reported as null).")
    if metrics.get("hdr") is None and not said:
        notes.append("HDR is undefined here: both Gram entropies are 0 (reported as null).")
    if C > d + 1:
        notes.append(
            f"C = {C} classes exceed d + 1 = {d + 1}: no simplex ETF fits in R^{d}, so NC targets are unreachable."
        )
    absent = (~stats.present).nonzero().flatten().tolist()
    if absent:
        shown = ", ".join(map(str, absent[:10])) + (" ..." if len(absent) > 10 else "")
        why = (
            "have no samples"
            if min_samples <= 1
            else f"have fewer than {min_samples} samples (--min-class-samples)"
        )
        kind = "present" if min_samples <= 1 else "kept"
        notes.append(
            f"{len(absent)} of the head's {head.num_classes} classes {why} ({shown}); "
            f"class-level metrics use the {C} {kind} classes."
        )
    if head.bias is None:
        notes.append("The head has no bias: NC4 uses argmax of W h.")
    if coincide:
        undefined = ", ".join(key for key in MEANS_DEPENDENT if key in metrics)
        notes.append(
            "The class means coincide (zero between-class spread, e.g. constant features): "
            f"{undefined} are undefined (reported as null)."
        )
    return notes + undefined_notes(metrics, notes)


def undefined_notes(metrics: dict, notes: list[str]) -> list[str]:
    """A note for every undefined (null, NaN or infinite) metric that no note names yet: a null in a
    report always comes with its reason."""
    said = " ".join(notes).lower()
    missing = [
        key
        for key, value in metrics.items()
        if (value is None or not math.isfinite(value)) and key not in said and key.split("_")[0] not in said
    ]
    if not missing:
        return []
    return [
        f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} undefined here (a ratio with a zero "
        "denominator, e.g. coinciding class means; reported as null)."
    ]
