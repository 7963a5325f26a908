"""nc-audit: Neural Collapse and matrix-information metrics of a classifier's last layer, with CI gates.

The Python API (imported lazily, so ``import nc_audit`` stays cheap for the CLI's --help):

- ``nc_audit.measure(checkpoint, features=... | data=...)`` or ``nc_audit.measure(model, loader)``
- ``nc_audit.measure_arrays(features, labels, head_weight, head_bias)``
- ``nc_audit.features(model, batch_or_loader)``: the head's input and the logits
- ``nc_audit.MeasureOptions``: every option of ``nc-audit measure`` (``fail_on`` and ``baseline`` too)
"""

from __future__ import annotations

import importlib
from typing import Any

from nc_audit.core.version import __version__

__all__ = ["MeasureOptions", "__version__", "features", "measure", "measure_arrays"]

_LAZY = {
    "measure_arrays": ("nc_audit.measure.api", "measure_arrays"),
    "features": ("nc_audit.measure.modules", "features"),
    "MeasureOptions": ("nc_audit.measure.options", "MeasureOptions"),
}


def __getattr__(name: str) -> Any:
    if name == "measure":  # the package itself, which is callable as nc_audit.measure.api.measure
        return importlib.import_module("nc_audit.measure")
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'nc_audit' has no attribute {name!r}")
