"""What a head may be (nc_audit/io/checkpoints/head_checks.py), the same for checkpoints and dumps: real, dense,
(C, d), with a bias of C values; a non-real head is refused, never skipped for a hidden layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CheckpointWriter, DumpWriter, backbone_state
from reference import Problem

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.load import find_head, load_checkpoint
from nc_audit.io.dumps.reader import read_head


@pytest.mark.parametrize(
    ("weight", "said"),
    [
        (lambda W: (W * 100).round().to(torch.int64), "holds integer values"),
        (lambda W: W.to(torch.complex64), "holds complex values"),
        (lambda W: W > 0, "holds boolean values"),
        (lambda W: W.to_sparse(), "is a sparse tensor"),
        (lambda W: torch.empty(W.shape, device="meta"), "is a meta tensor"),
    ],
    ids=["int", "complex", "bool", "sparse", "meta"],
)
@pytest.mark.parametrize("named", [False, True], ids=["detected", "named"])
def test_a_non_real_head_is_refused_with_the_reason(
    tmp_path: Path, random_problem: Problem, weight, said: str, named: bool
) -> None:
    state = backbone_state(random_problem)  # neck.weight (d, d) also fits: never taken instead
    state["fc.weight"] = weight(state["fc.weight"])
    path = tmp_path / "m.pt"
    torch.save(state, path)  # sparse and meta tensors as they are
    with pytest.raises(InputError, match=f"m.pt: the head weight fc.weight {said}"):
        find_head(
            load_checkpoint(path), feature_dim=random_problem.feature_dim, head_name="fc" if named else None
        )


def test_a_column_bias_is_the_bias_and_a_wrong_one_is_refused(
    write_checkpoint: CheckpointWriter, random_problem: Problem
) -> None:
    C = random_problem.num_classes
    state = backbone_state(random_problem)
    state["fc.bias"] = state["fc.bias"].reshape(C, 1)
    head = find_head(
        load_checkpoint(write_checkpoint(state, "column.pt")), feature_dim=random_problem.feature_dim
    )
    np.testing.assert_array_equal(head.bias.numpy(), random_problem.b)
    state["fc.bias"] = torch.zeros(C + 1)
    with pytest.raises(InputError, match=rf"wrong.pt: the head bias fc.bias has shape \({C + 1},\)"):
        find_head(
            load_checkpoint(write_checkpoint(state, "wrong.pt")), feature_dim=random_problem.feature_dim
        )


def test_a_dump_head_follows_the_same_rules(
    write_dump: DumpWriter, random_problem: Problem, tmp_path: Path
) -> None:
    C, d = random_problem.num_classes, random_problem.feature_dim
    column = Problem(
        random_problem.features, random_problem.labels, random_problem.W, random_problem.b.reshape(C, 1)
    )
    head = read_head(write_dump(column, "column.h5"))
    np.testing.assert_array_equal(head.bias.numpy(), random_problem.b)
    cases = [
        (
            Problem(random_problem.features, random_problem.labels, random_problem.W * (1 + 1j), None),
            "/head/weight holds complex",
        ),
        (
            Problem(random_problem.features, random_problem.labels, np.full((C, d), b"w"), None),
            "/head/weight holds strings",
        ),
        (
            Problem(random_problem.features, random_problem.labels, random_problem.W, np.zeros((C, 3))),
            rf"/head/bias has shape \({C}, 3\)",
        ),
    ]
    for index, (problem, said) in enumerate(cases):
        with pytest.raises(InputError, match=f"bad{index}.h5: {said}"):
            read_head(write_dump(problem, f"bad{index}.h5"))
