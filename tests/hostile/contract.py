"""The contract every nc-audit run keeps, whatever its input (README "Exit codes", issue 10).

- exit 0: done; every metric is a finite number in its range, or null with a note that names it;
- exit 1: a check failed (the report lists which);
- exit 2: one stderr line ``nc-audit: error: ...`` naming the file (or option) at fault, nothing on stdout;
- never a traceback, a signal, a hang, or more memory than a fixed budget.

Shared by ``test_corpus.py`` (subprocess runs over the generated corpus) and ``test_properties.py``
(in-process runs over generated dumps and checkpoints). Nothing here imports nc_audit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: Peak resident memory a run may reach (the README measures ~320 MB for a 1M×512 dump).
MEMORY_BUDGET_BYTES = 1 << 30
#: Address-space cap a subprocess runs under (torch imports and measures well within it).
ADDRESS_SPACE_CAP_BYTES = 3 << 30
EPS = 1e-9

#: (low, high) of every metric that has a range; entropies are never negative, shares lie in [0, 1].
RANGES: dict[str, tuple[float, float]] = {
    "nc1": (0.0, math.inf),
    "nc1_cdnv": (0.0, math.inf),
    "nc2_equinorm_means": (0.0, math.inf),
    "nc2_equinorm_head": (0.0, math.inf),
    "nc2_equiangular_means": (0.0, 1.0 + EPS),
    "nc2_equiangular_head": (0.0, 1.0 + EPS),
    "nc2_maxangle_means": (0.0, 2.0 + EPS),
    "nc2_maxangle_head": (0.0, 2.0 + EPS),
    "nc3": (0.0, 4.0 + EPS),
    "nc4": (0.0, 1.0),
    "accuracy": (0.0, 1.0),
    "h_head": (-EPS, math.inf),
    "h_means": (-EPS, math.inf),
    "mi": (-1e-7, math.inf),
    "mir": (-1e-7, 1.0 + 1e-7),
    "hdr": (0.0, 1.0 + EPS),
    "h_samples": (-EPS, math.inf),
    "h_labels": (-EPS, math.inf),
    "mi_samples": (-1e-7, math.inf),
    "mir_samples": (-1e-7, 1.0 + 1e-7),
    "hdr_samples": (0.0, 1.0 + EPS),
    "mi_samples_onehot": (-1e-7, math.inf),
}
#: Metrics that do not change when every feature is multiplied by the same positive number (the head fixed).
SCALE_INVARIANT = (
    "nc1", "nc1_cdnv", "nc2_equinorm_means", "nc2_equinorm_head", "nc2_equiangular_means",
    "nc2_equiangular_head", "nc2_maxangle_means", "nc2_maxangle_head", "nc3", "h_head", "h_means", "mi",
    "mir", "hdr",
)  # fmt: skip

ERROR_PREFIX = "nc-audit: error: "
CRASH_MARKERS = (
    "Traceback (most recent call last)",
    "Exception ignored",
    "Fatal Python error",
    "Segmentation fault",
)


def nonblank_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def assert_no_crash(*texts: str) -> None:
    """No traceback, 'Exception ignored' or fatal-error report anywhere in the output."""
    for text in texts:
        for marker in CRASH_MARKERS:
            assert marker not in text, f"output holds {marker!r}:\n{text[-2000:]}"


def assert_one_error_line(
    stderr: str, culprits: Iterable[str] = (), fragments: Iterable[str] = (), forbidden: Iterable[str] = ()
) -> str:
    """Exactly one non-blank stderr line, ``nc-audit: error: ...``, naming one of ``culprits`` (when any
    are given) and holding every fragment and none of ``forbidden``; returns it."""
    lines = nonblank_lines(stderr)
    assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}: {stderr[-1500:]!r}"
    line = lines[0]
    assert line.startswith(ERROR_PREFIX), f"not an error line: {line!r}"
    culprits = list(culprits)
    if culprits:
        assert any(culprit in line for culprit in culprits), f"names none of {culprits}: {line!r}"
    for fragment in fragments:
        assert fragment in line, f"lacks {fragment!r}: {line!r}"
    for bad in forbidden:
        assert bad not in line, f"says {bad!r}: {line!r}"
    return line


def records_of(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The report records of a report or a trajectory document."""
    if document.get("schema") == "nc-audit-trajectory/1":
        return list(document.get("records") or [])
    return [document]


def assert_metrics_in_range(document: Mapping[str, Any]) -> None:
    """Every metric of every record is finite and in range, or null with a note naming it."""
    for record in records_of(document):
        metrics = record.get("metrics")
        assert isinstance(metrics, Mapping), f"no metrics object: {record!r:.300}"
        notes = " ".join(str(note) for note in record.get("notes") or []).lower()
        for key, value in metrics.items():
            if value is None:
                assert key.lower() in notes or _family(key) in notes, (
                    f"{key} is null without a note naming it (notes: {notes[:500]!r})"
                )
                continue
            assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{key} = {value!r}"
            assert math.isfinite(value), f"{key} = {value!r} is not finite"
            low, high = RANGES.get(key, (-math.inf, math.inf))
            assert low <= value <= high, f"{key} = {value!r} lies outside [{low}, {high}]"
        details = record.get("details") or {}
        for key in ("accuracy", "ncc_accuracy"):
            value = details.get(key) if isinstance(details, Mapping) else None
            if value is not None:
                assert isinstance(value, (int, float)) and 0.0 <= value <= 1.0, f"details.{key} = {value!r}"


def _family(key: str) -> str:
    """The name a note may use for a metric: 'nc1' for nc1_cdnv, 'mir' for mir_samples, ..."""
    return re.split(r"_", key)[0]


def relative_difference(value: float | None, reference: float | None) -> float:
    if value is None or reference is None:
        return 0.0 if value is None and reference is None else math.inf
    scale = abs(reference)
    return abs(value - reference) / scale if scale > 0 else abs(value - reference)


def assert_matches(
    metrics: Mapping[str, Any],
    expected: Mapping[str, float | None],
    keys: Iterable[str],
    notes: list[str],
    rtol: float = 1e-6,
) -> None:
    """Each of ``keys`` equals ``expected`` to ``rtol``, or is null with a note naming it."""
    text = " ".join(notes).lower()
    for key in keys:
        value = metrics.get(key)
        if value is None:
            assert key in text or _family(key) in text, f"{key} is null without a note"
            continue
        assert relative_difference(value, expected[key]) <= rtol, (
            f"{key} = {value!r}, expected {expected[key]!r}"
        )
