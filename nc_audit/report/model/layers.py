"""Collapse across depth: one :class:`LayerResult` per measured layer of a report (``--layers``).

Each layer's input (pooled to (N, width), nc_audit.models.layer_taps) is measured as the head's input is:
NC1, NC1-CDNV, the NC2 metrics of its centred class means, their Gram's entropy H(K_M), and MI/MIR/HDR of
K_M against the Gram K_W of a head — the model's own head when the width equals the head's input width
(``against = "head"``), else a least-squares linear probe fitted on the same rows (``"probe"``,
nc_audit.metrics.probe). JSON: the report's ``"layers"`` list, one object per layer in forward order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.report.model.check import json_number

#: The metrics of a layer, in the order every output shows them (keys as in docs/METRICS.md).
LAYER_METRICS = (
    "nc1",
    "nc1_cdnv",
    "nc2_equinorm_means",
    "nc2_equiangular_means",
    "nc2_maxangle_means",
    "h_means",
    "h_head",
    "mi",
    "mir",
    "hdr",
)
#: What a layer's information metrics are measured against.
AGAINST = ("head", "probe")


@dataclass(frozen=True)
class LayerResult:
    """One layer: ``name`` (the module whose input is measured), ``module`` (its class name), ``width`` (pooled feature width),
    ``against`` (head | probe), ``probe_ridge`` (the ridge the probe needed, None: none or no probe),
    and the metrics of :data:`LAYER_METRICS` (None where undefined)."""

    name: str
    module: str
    width: int
    against: str
    nc1: float | None = None
    nc1_cdnv: float | None = None
    nc2_equinorm_means: float | None = None
    nc2_equiangular_means: float | None = None
    nc2_maxangle_means: float | None = None
    h_means: float | None = None
    h_head: float | None = None
    mi: float | None = None
    mir: float | None = None
    hdr: float | None = None
    probe_ridge: float | None = None

    @classmethod
    def of(
        cls,
        name: str,
        module: str,
        width: int,
        against: str,
        metrics: Mapping[str, float | None],
        ridge: float | None,
    ) -> LayerResult:
        """The layer's result from a measurement's metrics dict (only :data:`LAYER_METRICS` are kept)."""
        values = {key: json_number(metrics.get(key)) for key in LAYER_METRICS}
        return cls(name=name, module=module, width=width, against=against, probe_ridge=ridge, **values)

    @property
    def metrics(self) -> dict[str, float | None]:
        return {key: getattr(self, key) for key in LAYER_METRICS}

    def to_dict(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LayerResult:
        """A layer read from a report file (untrusted): every field checked for its type."""
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: a layer must be a JSON object")
        name, width, against = data.get("name"), data.get("width"), data.get("against")
        module = data.get("module", "")
        if not isinstance(name, str) or not isinstance(module, str):
            raise InputError(f"{where}: a layer needs a string 'name' and 'module'")
        if not isinstance(against, str) or against not in AGAINST:
            raise InputError(f"{where}: a layer's 'against' must be head or probe")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise InputError(f"{where}: layer 'width' must be a positive integer")
        values = {key: json_number(data.get(key)) for key in (*LAYER_METRICS, "probe_ridge")}
        return cls(name=name, module=module, width=width, against=against, **values)
