"""The statistics of a pruning run's table and plot: one row per sparsity, each column's mean ± std over
the records of that sparsity (one per sparsity today; several if runs are ever repeated)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nc_audit.experiments.studies.summary import summarise

Record = Mapping[str, Any]

#: Table columns: (summary column, header, how to read it from a record), in the table's order.
COLUMNS: tuple[tuple[str, str, Callable[[Record], float | None]], ...] = (
    ("kept", "kept", lambda r: r["kept"]["fraction"]),
    ("accuracy", "accuracy", lambda r: r["accuracy"]),
    ("test_accuracy", "test accuracy", lambda r: r["test_accuracy"]),
    ("nc1", "NC1", lambda r: r["report"]["metrics"]["nc1"]),
    ("nc4", "NC4", lambda r: r["report"]["metrics"]["nc4"]),
    ("mir", "MIR", lambda r: r["report"]["metrics"]["mir"]),
    ("hdr", "HDR", lambda r: r["report"]["metrics"]["hdr"]),
)
#: (summary column, header) of :data:`COLUMNS`, for the renderers.
HEADERS = tuple((name, header) for name, header, _ in COLUMNS)


def pruning_summary(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary rows of a pruning document (``nc-audit-pruning/1``), in the order of its records."""
    return summarise(document["records"], ["sparsity"], [(name, get) for name, _, get in COLUMNS])
