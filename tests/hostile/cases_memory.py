"""Round 2, issue 19 class 8 (the second pass's part): dumps whose class count, not their size, made the
second pass allocate gigabytes — products of rows × 3C float64 per worker (4.1 GB for a 627 KB dump with
C = 3,000, d = 8), and a 1e6-row head with labels 0, 5, 999999 (2 TB). The pass now scores a tile of
classes at a time within a byte budget independent of C; these must be measured (exit 0) within the
corpus's memory and time budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from generate import Case, case, write_dump


def _classes_dump(root: Path, name: str, C: int, d: int, N: int) -> Path:
    """float32 features around C random centres (labels over all C classes) and a (C, d) head."""
    rng = np.random.default_rng(C)
    centres = 3.0 * rng.standard_normal((C, d))
    labels = rng.integers(0, C, N)
    features = (centres[labels] + rng.standard_normal((N, d))).astype(np.float32)
    W = centres + 0.3 * rng.standard_normal((C, d))
    return write_dump(root / f"{name}.h5", features, labels, W=W, b=rng.standard_normal(C))


@case
def case_second_pass_classes_3000(root: Path) -> Case:
    dump = _classes_dump(root, "classes_3000", 3_000, 8, 18_000)
    return Case(
        "second_pass_classes_3000", 8,
        "a 0.7 MB dump with C = 3,000, d = 8 (the second pass once took 4 GB of products): measured, exit 0, "
        "within the memory budget",
        [["measure", str(dump), "--format", "json", "--no-progress"]],
        "ok", culprits=[dump.name],
    )  # fmt: skip


@case
def case_second_pass_classes_3000_decision_samples(root: Path) -> Case:
    dump = _classes_dump(root, "classes_3000_ds", 3_000, 8, 18_000)
    return Case(
        "second_pass_classes_3000_decision_samples", 8,
        "the same C = 3,000, d = 8 dump with --decision-samples 1000 (the decisions of a seeded subset, the "
        "other statistics from every row): exit 0 within the memory budget",
        [["measure", str(dump), "--decision-samples", "1000", "--format", "json", "--no-progress"]],
        "ok", culprits=[dump.name],
    )  # fmt: skip


@case
def case_head_rows_million_sparse_labels(root: Path) -> Case:
    rng = np.random.default_rng(5)
    labels = np.tile(np.array([0, 5, 999_999], dtype=np.int64), 100)
    features = (rng.standard_normal((300, 4)) + 3.0 * np.eye(4)[labels % 4]).astype(np.float32)
    W = rng.standard_normal((1_000_000, 4)).astype(np.float32)
    dump = write_dump(root / "million_head.h5", features, labels, W=W, b=np.zeros(1_000_000, np.float32))
    return Case(
        "head_rows_million_sparse_labels", 8,
        "labels 0, 5, 999999 with a 1e6-row head (the second pass once tried 2 TB of products): measured over "
        "the 3 present classes (exit 0), the head's argmax over all 1e6 rows, within the memory budget",
        [["measure", str(dump), "--format", "json", "--no-progress"]],
        "ok", culprits=[dump.name],
    )  # fmt: skip


#: The cases `make test` runs; the other variants of this class are marked slow (`make test-all`, CI).
FAST = ("second_pass_classes_3000",)
