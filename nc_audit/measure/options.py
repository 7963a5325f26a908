"""MeasureOptions: what one measurement reads and computes — one dataclass shared by the Python API
(:func:`nc_audit.measure.api.measure`), ``track`` (:func:`nc_audit.measure.trajectory.measure_trajectory`)
and the CLI, as pip-audit's ``AuditOptions`` is."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

#: Memory the sample-level per-class scatters (8·C·d² bytes) may take before SLQ takes over.
SAMPLE_BUDGET_BYTES = 2**30


@dataclass(frozen=True)
class MeasureOptions:
    """How a checkpoint is measured; every field has the CLI flag of the same name.

    features      HDF5 dump of the checkpoint's features (``track`` finds one per checkpoint instead)
    data          dataset name or file to extract features from, through the feature cache
    split         the split whose decisions are measured (NC4, accuracy); class means come from
                  ``train`` when there is one (Papyan's protocol)
    head          state-dict name of the classifier head (default: detected)
    model         ``package.module:factory`` for checkpoints that do not describe their architecture
    cache_dir     feature cache folder for ``data`` (default: $NC_AUDIT_CACHE or ~/.cache/nc-audit)
    device        'auto' | 'cpu' | 'cuda' | 'cuda:N'
    chunk_rows    rows per streamed chunk (default: about 32 MB of features)
    sample_level  also the sample-level metrics (N×N Grams, by structured exact routes or SLQ)
    estimator     sample-level joint entropies: 'auto' | 'exact' | 'slq'
    sample_budget_bytes  memory the sample-level per-class scatters may take
    """

    features: Path | None = None
    data: str | None = None
    split: str | None = None
    head: str | None = None
    model: str | None = None
    cache_dir: Path | None = None
    device: str = "auto"
    chunk_rows: int | None = None
    sample_level: bool = False
    estimator: str = "auto"
    sample_budget_bytes: int = SAMPLE_BUDGET_BYTES

    @classmethod
    def of(cls, options: MeasureOptions | None = None, **changes: Any) -> MeasureOptions:
        """``options`` (default: all defaults) with ``changes`` applied; an unknown name is a TypeError
        that lists the known ones."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(
                f"unknown measure option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        if "features" in changes and changes["features"] is not None:
            changes["features"] = Path(changes["features"])
        if "cache_dir" in changes and changes["cache_dir"] is not None:
            changes["cache_dir"] = Path(changes["cache_dir"])
        return replace(options or cls(), **changes)
