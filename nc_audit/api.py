"""The Python API as plain functions: what ``import nc_audit`` exposes (see :mod:`nc_audit`).

- :func:`measure`: a checkpoint (``features=`` or ``data=``), or a module with a loader, to a Report
- :func:`measure_arrays`: features, labels and a head as arrays to a Report
- :func:`measure_trajectory`: many checkpoints to their Reports, in training order
- :func:`features`: the head's input and the logits of a model on a batch or loader
- :class:`MeasureOptions`: every option of ``nc-audit measure`` (``fail_on`` and ``baseline`` too)
"""

from __future__ import annotations

from nc_audit.measurement.api import measure, measure_arrays
from nc_audit.measurement.modules import features
from nc_audit.measurement.options import MeasureOptions
from nc_audit.measurement.trajectory import measure_trajectory

__all__ = ["MeasureOptions", "features", "measure", "measure_arrays", "measure_trajectory"]
