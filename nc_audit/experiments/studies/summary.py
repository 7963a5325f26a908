"""Mean ± standard deviation over seeds: the summary rows of a study's table and plot.

The spread is the sample standard deviation (n − 1 in the denominator; 0 for a single run), the same
statistic as ``make cma-experiment``. Values that are None (undefined metrics) are left out and counted.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

#: A column of a summary: (name, function from a run's record to its value or None).
Column = tuple[str, Callable[[dict[str, Any]], float | None]]


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """{"mean", "std", "n"} of the values that are not None (mean and std None when there are none)."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return {"mean": None, "std": None, "n": 0}
    spread = statistics.stdev(present) if len(present) > 1 else 0.0
    return {"mean": statistics.fmean(present), "std": spread, "n": len(present)}


def summarise(
    records: list[dict[str, Any]], group_keys: Sequence[str], columns: Sequence[Column]
) -> list[dict[str, Any]]:
    """One row per group of records (equal values of ``group_keys``, in first-seen order): the group's
    values and, per column, mean ± std over its records (its seeds)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(tuple(record[key] for key in group_keys), []).append(record)
    rows = []
    for values, members in groups.items():
        row: dict[str, Any] = dict(zip(group_keys, values, strict=True))
        row["runs"] = len(members)
        for name, get in columns:
            row[name] = mean_std([get(member) for member in members])
        rows.append(row)
    return rows
