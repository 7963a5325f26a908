"""Measuring: options, the streaming passes, report building, trajectories, the monitor.

The package is callable: ``nc_audit.measure(...)`` is :func:`nc_audit.measure.api.measure` whether
Python resolved the name to this package or to the function (importing any ``nc_audit.measure.*``
module binds the package to that name).
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`nc_audit.measure.api.measure`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from nc_audit.measure.api import measure

        return measure(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
