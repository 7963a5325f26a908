"""The typed results: :class:`Report` (one checkpoint), :class:`Trajectory` (reports in order; a single
report is a trajectory of one), :class:`Check`, :class:`Conventions`. JSON is their serialisation
(``to_dict``/``from_dict``)."""

from nc_audit.report.model.check import Check, CheckKind, json_number
from nc_audit.report.model.layers import LAYER_METRICS, LayerResult
from nc_audit.report.model.report import JSON, Conventions, Report, finite_or_none
from nc_audit.report.model.trajectory import Record, Trajectory, record_label, trajectory_dict

__all__ = [
    "JSON",
    "LAYER_METRICS",
    "Check",
    "CheckKind",
    "Conventions",
    "LayerResult",
    "Record",
    "Report",
    "Trajectory",
    "finite_or_none",
    "json_number",
    "record_label",
    "trajectory_dict",
]
