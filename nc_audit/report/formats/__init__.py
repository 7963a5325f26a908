"""Output formats of measurement results: one class per format over :class:`~nc_audit.report.model.Trajectory`
(a single report is a trajectory of one), chosen by name from :mod:`nc_audit.report.formats.registry`."""
