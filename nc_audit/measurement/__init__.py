"""Measuring: options, the streaming passes, report building, trajectories, the monitor.

The public functions are re-exported, as plain functions, by :mod:`nc_audit.api` (``nc_audit.measure``).
"""
