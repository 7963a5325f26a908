"""Checkpoints load safely (never executing what they hold) and the classifier head is found or named.

Accepted: a bare state dict, one nested under state_dict / model / model_state_dict, 'module.'
prefixes (DataParallel), and safetensors. Refused: anything whose unpickling would run code.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest
import torch
from conftest import CheckpointWriter, CreatesAFile, backbone_state
from reference import Problem

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.load import find_head, load_checkpoint

StateDict = dict[str, torch.Tensor]


@pytest.fixture
def state(random_problem: Problem) -> StateDict:
    return backbone_state(random_problem)


def assert_same_tensors(loaded: StateDict, expected: StateDict) -> None:
    assert sorted(loaded) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


# --- formats ----------------------------------------------------------------------------------------
def test_a_bare_state_dict_loads_with_its_sha256(
    write_checkpoint: CheckpointWriter, state: StateDict
) -> None:
    path = write_checkpoint(state, "bare.pt")
    checkpoint = load_checkpoint(path)
    assert_same_tensors(checkpoint.state_dict, state)
    assert list(checkpoint.state_dict) == list(state)  # module order is kept
    assert checkpoint.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("nest", ["state_dict", "model", "model_state_dict"])
def test_a_nested_state_dict_loads(write_checkpoint: CheckpointWriter, state: StateDict, nest: str) -> None:
    checkpoint = load_checkpoint(write_checkpoint(state, f"{nest}.pth", nest=nest))
    assert_same_tensors(checkpoint.state_dict, state)
    assert checkpoint.step == 3  # the sibling 'epoch' entry is kept as metadata


def test_the_dataparallel_module_prefix_is_stripped(
    write_checkpoint: CheckpointWriter, state: StateDict
) -> None:
    checkpoint = load_checkpoint(write_checkpoint(state, "ddp.bin", nest="state_dict", prefix="module."))
    assert_same_tensors(checkpoint.state_dict, state)
    assert find_head(checkpoint, feature_dim=12).name == "fc"


def test_a_real_modules_state_dict_loads_and_its_last_linear_is_the_head(tmp_path: Path) -> None:
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 12), torch.nn.ReLU(), torch.nn.Linear(12, 12), torch.nn.Linear(12, 7)
    )
    path = tmp_path / "sequential.pt"
    torch.save(model.state_dict(), path)
    head = find_head(load_checkpoint(path), feature_dim=12)
    assert head.name == "3"
    assert torch.equal(head.weight, model[3].weight.detach().double())
    assert torch.equal(head.bias, model[3].bias.detach().double())


def test_safetensors_loads(write_checkpoint: CheckpointWriter, state: StateDict) -> None:
    checkpoint = load_checkpoint(write_checkpoint(state, "model.safetensors"))
    assert_same_tensors(checkpoint.state_dict, state)
    assert not checkpoint.ordered  # safetensors sorts keys: 'last' means nothing there


def test_a_missing_file_and_an_unknown_suffix_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.pt: no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")
    other = tmp_path / "weights.npz"
    other.write_bytes(b"0")
    with pytest.raises(InputError, match=r"weights\.npz: unknown checkpoint type '\.npz'"):
        load_checkpoint(other)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.pt", b""),
        ("notes.pt", b"hello, this is not a checkpoint\n"),
        ("junk.safetensors", b"\x10" + bytes(20)),
    ],
    ids=["empty-pt", "text-pt", "junk-safetensors"],
)
def test_a_file_that_is_not_a_checkpoint_is_an_input_error_naming_it(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"{name}: not a readable"):
        load_checkpoint(path)


# --- head detection ----------------------------------------------------------------------------------
def test_the_last_fitting_weight_is_the_head_and_is_named(
    write_checkpoint: CheckpointWriter, state: StateDict, random_problem: Problem
) -> None:
    """neck.weight (12, 12) and fc.weight (7, 12) both fit d = 12; fc comes last in module order."""
    head = find_head(load_checkpoint(write_checkpoint(state)), feature_dim=12)
    assert head.name == "fc"
    assert torch.equal(head.weight, torch.from_numpy(random_problem.W))
    assert torch.equal(head.bias, torch.from_numpy(random_problem.b))
    assert head.weight.dtype == head.bias.dtype == torch.float64


def test_a_named_head_overrides_detection(write_checkpoint: CheckpointWriter, state: StateDict) -> None:
    checkpoint = load_checkpoint(write_checkpoint(state))
    for name in ("neck", "neck.weight"):
        head = find_head(checkpoint, feature_dim=12, head_name=name)
        assert head.name == "neck"
        assert torch.equal(head.weight, state["neck.weight"])
        assert torch.equal(head.bias, state["neck.bias"])


def test_a_named_head_that_does_not_exist_lists_the_2d_weights(
    write_checkpoint: CheckpointWriter, state: StateDict
) -> None:
    checkpoint = load_checkpoint(write_checkpoint(state))
    with pytest.raises(InputError, match=r"no 2-D tensor 'classifier\.weight'") as error:
        find_head(checkpoint, feature_dim=12, head_name="classifier")
    assert "fc.weight (7, 12)" in str(error.value) and "encoder.weight (12, 5)" in str(error.value)


def test_two_fitting_heads_in_safetensors_are_ambiguous_without_a_usual_name_or_class_count(
    write_checkpoint: CheckpointWriter, state: StateDict
) -> None:
    renamed = {key.replace("fc.", "out."): value for key, value in state.items()}
    checkpoint = load_checkpoint(write_checkpoint(renamed, "model.safetensors"))
    with pytest.raises(InputError, match="ambiguous classifier head") as error:
        find_head(checkpoint, feature_dim=12)
    message = str(error.value)
    assert "out.weight (7, 12)" in message and "neck.weight (12, 12)" in message
    assert "--head" in message
    assert find_head(checkpoint, feature_dim=12, head_name="out").name == "out"
    # the labels' class count picks the one (C, d) weight with C = 7 rows
    assert find_head(checkpoint, feature_dim=12, num_classes=7).name == "out"


def test_a_usual_head_name_wins_among_fitting_weights_in_safetensors(
    write_checkpoint: CheckpointWriter, state: StateDict
) -> None:
    """neck (12, 12) and fc (7, 12) both fit; 'fc' is a usual head name (classifier, fc, head, score)."""
    checkpoint = load_checkpoint(write_checkpoint(state, "model.safetensors"))
    assert find_head(checkpoint, feature_dim=12).name == "fc"


def test_a_head_typo_gets_did_you_mean(write_checkpoint: CheckpointWriter, state: StateDict) -> None:
    checkpoint = load_checkpoint(write_checkpoint(state))
    with pytest.raises(InputError, match=r"no 2-D tensor 'fcc\.weight'; did you mean 'fc'\?"):
        find_head(checkpoint, feature_dim=12, head_name="fcc")


def test_one_fitting_head_in_safetensors_is_found(
    write_checkpoint: CheckpointWriter, state: StateDict
) -> None:
    without_neck = {key: value for key, value in state.items() if not key.startswith("neck")}
    head = find_head(load_checkpoint(write_checkpoint(without_neck, "model.safetensors")), feature_dim=12)
    assert head.name == "fc"


def test_no_fitting_head_lists_the_2d_weights(write_checkpoint: CheckpointWriter, state: StateDict) -> None:
    checkpoint = load_checkpoint(write_checkpoint(state))
    with pytest.raises(InputError, match=r"no classifier head of shape \(C, 30\)") as error:
        find_head(checkpoint, feature_dim=30)
    message = str(error.value)
    for described in ("encoder.weight (12, 5)", "neck.weight (12, 12)", "fc.weight (7, 12)"):
        assert described in message
    assert "--head" in message


# --- refusing code ----------------------------------------------------------------------------------
def test_a_whole_model_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "whole_model.pt"
    torch.save(torch.nn.Linear(12, 7), path)
    with pytest.raises(InputError, match="state_dict") as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)


def test_the_payload_really_runs_when_unpickled_unsafely(tmp_path: Path) -> None:
    """Control for the next test: the payload does create its file under plain pickle."""
    marker = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(CreatesAFile(marker))).close()
    assert marker.exists()


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "inside-a-state-dict"])
def test_a_pickle_that_would_execute_code_is_refused_without_running_it(
    tmp_path: Path, state: StateDict, wrapped: bool
) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = CreatesAFile(marker)
    torch.save({"state_dict": state, "extra": payload} if wrapped else payload, path)

    with pytest.raises(InputError, match="state_dict") as error:
        load_checkpoint(path)

    assert not marker.exists()
    message = str(error.value)
    assert str(path) in message and "\n" not in message


def test_file_sha256_reads_a_file_once_and_sees_a_rewrite(tmp_path: Path) -> None:
    """The digest is remembered while the file is unchanged (measure --data hashes the checkpoint for
    the cache key and again for the report), and recomputed after a same-size rewrite."""
    import hashlib

    from nc_audit.io.checkpoints.load import _sha256, file_sha256

    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 4096)
    misses = _sha256.cache_info().misses
    first = file_sha256(path)
    assert file_sha256(path) == first == hashlib.sha256(b"a" * 4096).hexdigest()
    assert _sha256.cache_info().misses == misses + 1  # the second call did not read the file
    path.write_bytes(b"b" * 4096)  # same size, new content (and new mtime/ctime)
    assert file_sha256(path) == hashlib.sha256(b"b" * 4096).hexdigest()
