"""Property (issue 20, item 5): features held in memory and the same features in a dump are one
measurement. For random shapes, dtypes, class counts (absent classes included), splits, chunk sizes and
magnitudes, ``measure_arrays`` gives the report ``measure`` gives for a dump of those arrays — every
metric to 1e-12, the same nulls, conventions, notes and targets — or both refuse with the same message
(the dump's path and ``measure_arrays`` named in their places)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nc_audit
from nc_audit.core.errors import InputError

TOLERANCE = 1e-12


@st.composite
def problems(draw: st.DrawFn) -> dict[str, Any]:
    C = draw(st.integers(2, 6))
    d = draw(st.integers(1, 8))
    n = draw(st.integers(2, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, C, size=n)
    if draw(st.booleans()):  # a class without samples
        labels = np.where(labels == C - 1, 0, labels)
    scale = draw(st.sampled_from([1.0, 1e-3, 1e6, 1e200, 1e-200]))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.float16]))
    centres = rng.normal(size=(C, d)) * draw(st.sampled_from([0.0, 1.0, 5.0]))
    features = (centres[labels] + rng.normal(size=(n, d))) * (scale if dtype == np.float64 else 1.0)
    return {
        "features": features.astype(dtype),
        "labels": labels,
        "W": rng.normal(size=(C, d)),
        "b": rng.normal(size=C) if draw(st.booleans()) else None,
        "options": {
            "chunk_rows": draw(st.sampled_from([None, 1, 7])),
            "sample_level": draw(st.booleans()),
            "min_class_samples": draw(st.sampled_from([1, 3])),
        },
    }


def outcome(call: Any, where: str) -> dict[str, Any] | str:
    try:
        return call().to_dict()
    except InputError as error:
        return str(error).replace(where, "<input>")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pipeline")


@given(problem=problems())
@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_arrays_in_memory_measure_as_their_dump(folder: Path, problem: dict[str, Any]) -> None:
    path = folder / "dump.h5"
    with h5py.File(path, "w") as handle:
        handle["features"], handle["labels"] = problem["features"], problem["labels"]
        handle["head/weight"] = problem["W"]
        if problem["b"] is not None:
            handle["head/bias"] = problem["b"]
    options = problem["options"]
    from_dump = outcome(lambda: nc_audit.measure(path, **options), str(path))
    from_memory = outcome(
        lambda: nc_audit.measure_arrays(
            problem["features"], problem["labels"], problem["W"], problem["b"], **options
        ),
        "measure_arrays",
    )
    if isinstance(from_dump, str) or isinstance(from_memory, str):
        assert from_memory == from_dump
        return
    for key, value in from_dump["metrics"].items():
        other = from_memory["metrics"][key]
        if value is None or other is None:
            assert value is None and other is None, key
        else:
            assert abs(other - value) <= TOLERANCE * max(1.0, abs(value)), (key, other, value)
    for part in ("conventions", "notes", "targets", "checkpoint"):
        assert from_memory[part] == from_dump[part], part
    assert from_memory["features"] == {**from_dump["features"], "path": None}
