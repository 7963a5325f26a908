"""nc-audit: Neural Collapse and matrix-information metrics of a classifier's last layer, with CI gates."""

from __future__ import annotations

from nc_audit.core.version import __version__

__all__ = ["__version__", "measure"]


def __getattr__(name: str):  # lazy: `import nc_audit` stays cheap for the CLI's --help
    if name == "measure":
        from nc_audit.measure.api import measure

        return measure
    raise AttributeError(f"module 'nc_audit' has no attribute {name!r}")
