"""Properties (issue 21): run-folder labels are distinct trailing names of their paths; a
trainer_state.json of any bytes gives a step or one InputError naming it (never another exception); a
bare 2-D parameter with as many rows as classes always stops a detected head (never a guessed layer)."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path, PurePosixPath

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nc_audit.core.errors import InputError
from nc_audit.measurement.run_folders import distinct_labels, trainer_step
from nc_audit.models.hooks import find_head_module

names = st.text(alphabet="abc-_0123456789.", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))
paths = st.lists(st.lists(names, min_size=1, max_size=4).map(lambda parts: Path(*parts)), min_size=1, max_size=6,
                 unique=True)  # fmt: skip


@given(paths)
def test_labels_are_distinct_trailing_names(items: list[Path]) -> None:
    labels = distinct_labels(items)
    assert set(labels) == set(items)
    for path, label in labels.items():
        assert (
            PurePosixPath(path.as_posix()).parts[-len(PurePosixPath(label).parts) :]
            == PurePosixPath(label).parts
        )
    assert len(set(labels.values())) == len(items)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200) | st.builds(lambda v: ('{"global_step": ' + v + "}").encode(),
                                           st.sampled_from(["7", "-1", "1e9", "true", "null", "[1]", "9" * 5000])))  # fmt: skip
def test_any_trainer_state_gives_a_step_or_one_input_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "trainer_state.json").write_bytes(data)
        try:
            step = trainer_step(Path(folder))
        except InputError as error:
            assert "trainer_state.json" in str(error) and "\n" not in str(error)
        else:
            assert step is None or (isinstance(step, int) and step >= 0)


class _WithBare(nn.Module):
    def __init__(self, widths: list[int], rows: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*(nn.Linear(a, b) for a, b in itertools.pairwise(widths)))
        self.proto = nn.Parameter(torch.zeros(rows, widths[-1]))


@given(st.lists(st.integers(2, 6), min_size=2, max_size=4), st.integers(2, 6))
def test_a_bare_parameter_with_as_many_rows_as_classes_stops_detection(
    widths: list[int], classes: int
) -> None:
    with pytest.raises(InputError, match="cannot be identified with certainty"):
        find_head_module(_WithBare(widths, classes), None, classes)
