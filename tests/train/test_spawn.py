"""Children of a run (nc_audit.train.spawn): they continue the parent's schedule and momentum exactly and
differ only by the order of their batches; a run state survives a file round trip bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.io.data.datasets import ArrayDataset, load_dataset
from nc_audit.models.registry import architecture_record
from nc_audit.train.recipe import Recipe, RunState, start_run, train_epochs, train_from_scratch
from nc_audit.train.spawn import load_run_state, save_run_state, spawn

pytestmark = pytest.mark.usefixtures("one_thread")
RECORD = architecture_record("mlp", {"input_dim": 64, "hidden": [16, 16], "batch_norm": True}, 10)
RECIPE = Recipe(epochs=4)


@pytest.fixture(scope="module")
def train() -> ArrayDataset:
    return load_dataset("digits", "train")


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def parent_at(train: ArrayDataset, epoch: int) -> RunState:
    state = start_run(RECORD, RECIPE, 0)
    train_epochs(state, train, RECIPE, epoch)
    return state


def test_a_child_with_the_parents_order_ends_as_the_run_trained_straight_through(train: ArrayDataset) -> None:
    """Schedule and momentum continue from epoch k: only the batch order can make a child differ."""
    straight = weights(train_from_scratch(RECORD, train, RECIPE, 0))
    for k in (0, 2):
        child = spawn(parent_at(train, k), RECIPE, None)
        assert child.epoch == k
        assert same(weights(train_epochs(child, train, RECIPE, RECIPE.epochs)), straight)


def test_children_share_the_parent_and_differ_only_by_data_order(train: ArrayDataset) -> None:
    parent = parent_at(train, 2)
    before = weights(parent.model)
    lr = parent.optimizer.param_groups[0]["lr"]
    ends = {}
    for name, order_seed in (("a", 11), ("a again", 11), ("b", 12)):
        child = spawn(parent, RECIPE, order_seed)
        assert same(weights(child.model), before)  # the parent's weights, BN buffers included
        assert child.optimizer.param_groups[0]["lr"] == lr  # the schedule at epoch 2
        ends[name] = weights(train_epochs(child, train, RECIPE, RECIPE.epochs))
    assert same(ends["a"], ends["a again"])  # same data-order seed: the same child, bit for bit
    assert not same(ends["a"], ends["b"])
    assert same(weights(parent.model), before)  # training the children left the parent alone
    assert parent.epoch == 2


def test_a_run_state_file_continues_bit_for_bit(train: ArrayDataset, tmp_path: Path) -> None:
    parent = parent_at(train, 2)
    path = tmp_path / "parent.pt"
    save_run_state(path, parent, RECORD, {"seed": 0})
    loaded = load_run_state(path, RECORD, RECIPE)
    assert loaded.epoch == 2
    in_memory = weights(train_epochs(parent, train, RECIPE, RECIPE.epochs))
    assert same(weights(train_epochs(loaded, train, RECIPE, RECIPE.epochs)), in_memory)


def test_a_damaged_or_foreign_run_state_is_one_line(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(InputError, match=r"damaged\.pt"):
        load_run_state(damaged, RECORD, RECIPE)
    foreign = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(InputError, match=r"not a complete nc-audit-run-state/1 file"):
        load_run_state(foreign, RECORD, RECIPE)


def test_training_backwards_or_past_the_schedule_is_refused(train: ArrayDataset) -> None:
    state = parent_at(train, 2)
    with pytest.raises(InputError, match="from epoch 2 to epoch 1"):
        train_epochs(state, train, RECIPE, 1)
    with pytest.raises(InputError, match="to epoch 5 of 4"):
        train_epochs(state, train, RECIPE, 5)
