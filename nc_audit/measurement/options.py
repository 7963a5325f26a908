"""MeasureOptions: what one measurement reads and computes — one dataclass shared by the Python API
(:func:`nc_audit.measurement.api.measure`), ``track`` (:func:`nc_audit.measurement.trajectory.measure_trajectory`)
and the CLI, as pip-audit's ``AuditOptions`` is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from nc_audit.metrics.routes import CLASS_BUDGET_BYTES
from nc_audit.models.spec import ModelSpec

#: Memory the sample-level per-class scatters (8·C·d² bytes) may take before SLQ takes over.
SAMPLE_BUDGET_BYTES = 2**30


@dataclass(frozen=True)
class MeasureOptions:
    """How a checkpoint is measured; every field has the CLI flag of the same name.

    features      HDF5 dump of the checkpoint's features (``track`` finds one per checkpoint instead)
    data          dataset name or file to extract features from, through the feature cache
    split         the split whose decisions are measured (NC4, accuracy); class means come from
                  ``train`` when there is one (Papyan's protocol)
    means_split   the split whose class means every metric uses (``test`` with ``split="test"``: the
                  held-out features' own geometry); default: Papyan's protocol above
    head          state-dict name of the classifier head (default: detected)
    model         ``package.module:factory`` for checkpoints that do not describe their architecture
    model_args    ``KEY=VALUE`` arguments of ``model`` (VALUE read as JSON, else a string)
    cache_dir     feature cache folder for ``data`` (default: $NC_AUDIT_CACHE or ~/.cache/nc-audit)
    device        'auto' | 'cpu' | 'cuda' | 'cuda:N'
    chunk_rows    rows per streamed chunk (default: about 32 MB of features)
    sample_level  also the sample-level metrics (N×N Grams, by structured exact routes or SLQ)
    estimator     sample-level joint entropies: 'auto' | 'exact' | 'slq'
    sample_budget_bytes  memory the sample-level per-class scatters may take
    decision_samples  count NC4/accuracy on a seeded random subset of this many rows (default: all)
    decision_seed the seed of that subset (named in the report's conventions)
    class_route   class-level Grams and pairs: 'auto' | 'dense' | 'factored' (nc_audit.metrics.routes)
    min_class_samples  measure only the classes with at least this many samples (classes without
                  samples are always left out); the report says how many classes and samples that drops
    class_budget_bytes  memory the class-level routes may take; ``auto`` leaves dense above it
    fail_on       rules ``METRIC OP VALUE`` (``"nc1<=0.5"``); the report's checks, exit 1 in the CLI
    baseline      a report or trajectory JSON to compare with (checks fail when a metric moved away
                  from its NC target by more than ``tolerance``)
    tolerance     allowed increase of a metric's distance to its NC target (one number or per metric)
    task          'classification' (``data`` holds inputs and labels) or 'next-token' (the source is a
                  causal LM folder and ``data`` a corpus; see nc_audit.models.next_token)
    context       next-token: tokens per window (default: the model's longest sequence, at most 1024)
    text_column   next-token with a .jsonl corpus: the field holding each document's text
    layers        collapse across depth: ``("all",)`` or module names whose input is measured besides the
                  head's (nc_audit.measurement.layers); a string is split at commas; () measures the head only
    layers_budget_bytes  memory the per-layer float64 statistics (8·width² each) may take together
    allow_external_data  follow external links, external storage and virtual-dataset sources into other
                  files (trusted multi-file dumps; refused by default, see io/hdf5/guard.py)
    """

    features: Path | None = None
    data: str | None = None
    split: str | None = None
    means_split: str | None = None
    head: str | None = None
    model: str | None = None
    model_args: tuple[str, ...] = ()
    cache_dir: Path | None = None
    device: str = "auto"
    chunk_rows: int | None = None
    sample_level: bool = False
    estimator: str = "auto"
    sample_budget_bytes: int = SAMPLE_BUDGET_BYTES
    decision_samples: int | None = None
    decision_seed: int = 0
    class_route: str = "auto"
    min_class_samples: int = 1
    class_budget_bytes: int = CLASS_BUDGET_BYTES
    fail_on: tuple[str, ...] = ()
    baseline: Path | None = None
    tolerance: float | Mapping[str, float] = 0.0
    allow_external_data: bool = False
    task: str = "classification"
    context: int | None = None
    text_column: str = "text"
    layers: tuple[str, ...] = ()
    layers_budget_bytes: int = SAMPLE_BUDGET_BYTES

    def model_spec(self, device: str | None = None) -> ModelSpec:
        """The model these options build from a checkpoint (``model``, ``model_args``, ``head``) and where
        it runs: ``device`` (a resolved one, e.g. this rank's GPU), else the ``device`` field."""
        return ModelSpec(self.model, self.model_args, self.head, device or self.device)

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
        for name in ("cache_dir", "baseline"):
            if changes.get(name) is not None:
                changes[name] = Path(changes[name])
        for name in ("fail_on", "model_args"):  # one rule or argument alone is a string, not a sequence
            if isinstance(changes.get(name), str):
                changes[name] = (changes[name],)
            elif changes.get(name) is not None:
                changes[name] = tuple(changes[name])
        if isinstance(changes.get("layers"), str):
            changes["layers"] = layer_names(changes["layers"])
        elif changes.get("layers") is not None:
            changes["layers"] = tuple(changes["layers"])
        return replace(options or cls(), **changes)


def layer_names(text: str | None) -> tuple[str, ...]:
    """``--layers all`` or ``--layers body.0,body.3`` as a tuple of names (blanks dropped)."""
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())
