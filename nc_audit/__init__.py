"""nc-audit: Neural Collapse and matrix-information metrics of a classifier's last layer, with CI gates.

The Python API (imported lazily, so ``import nc_audit`` stays cheap for the CLI's --help):

- ``nc_audit.measure(checkpoint, features=... | data=...)`` or ``nc_audit.measure(model, loader)``
- ``nc_audit.measure_arrays(features, labels, head_weight, head_bias)``
- ``nc_audit.features(model, batch_or_loader)``: the head's input and the logits
- ``nc_audit.measure_trajectory(paths, features=... | data=...)``: reports in training order
- ``nc_audit.MeasureOptions``: every option of ``nc-audit measure`` (``fail_on`` and ``baseline`` too)
"""

from __future__ import annotations

import importlib
from typing import Any

from nc_audit.core.version import __version__

__all__ = ["MeasureOptions", "__version__", "features", "measure", "measure_arrays", "measure_trajectory"]

_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _API:  # plain functions of nc_audit.api, imported on first use
        return getattr(importlib.import_module("nc_audit.api"), name)
    raise AttributeError(f"module 'nc_audit' has no attribute {name!r}")
