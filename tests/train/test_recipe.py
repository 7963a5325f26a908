"""The from-scratch recipe (nc_audit.train.recipe) against the loop written out by hand: seeded init, SGD
with momentum and weight decay, cosine schedule per epoch, a fresh seeded order per epoch, the trailing
partial batch dropped, cross-entropy with label smoothing."""

from __future__ import annotations

import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.io.data.datasets import load_dataset
from nc_audit.models.registry import architecture_record, build_model
from nc_audit.train.recipe import Recipe, batch_starts, train_from_scratch

pytestmark = pytest.mark.usefixtures("one_thread")
RECORD = architecture_record("mlp", {"input_dim": 64, "hidden": [16, 16], "batch_norm": True}, 10)


def by_hand(recipe: Recipe, seed: int) -> dict[str, torch.Tensor]:
    train = load_dataset("digits", "train")
    torch.manual_seed(seed)
    model = build_model(RECORD)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)  # fmt: skip
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)
    order = torch.Generator().manual_seed(seed)
    N, B = len(train), recipe.batch_size
    model.train()
    for _ in range(recipe.epochs):
        permutation = torch.randperm(N, generator=order)
        for start in range(0, N - (N % B if recipe.drop_last else 0), B):
            index = permutation[start : start + B]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(train.inputs[index]), train.labels[index],
                                                     label_smoothing=recipe.label_smoothing)  # fmt: skip
            loss.backward()
            optimizer.step()
        schedule.step()
    return model.state_dict()


@pytest.mark.parametrize(("drop_last", "label_smoothing"), [(True, 0.0), (False, 0.0), (True, 0.1)])
def test_training_follows_the_recipe_written_out_by_hand(drop_last: bool, label_smoothing: float) -> None:
    recipe = Recipe(epochs=3, batch_size=64, drop_last=drop_last, label_smoothing=label_smoothing)
    seen = []
    model = train_from_scratch(RECORD, load_dataset("digits", "train"), recipe, seed=5,
                               on_epoch=lambda epoch, m, loss: seen.append((epoch, m.training, loss)))  # fmt: skip
    expected = by_hand(recipe, seed=5)
    assert not model.training
    for key, value in expected.items():
        assert torch.equal(model.state_dict()[key], value), key
    assert [(epoch, training) for epoch, training, _ in seen] == [(1, True), (2, True), (3, True)]
    assert all(loss > 0 for _, _, loss in seen)


def test_batch_starts_drop_only_the_trailing_partial_batch() -> None:
    assert list(batch_starts(1347, 64, drop_last=True)) == list(range(0, 1344, 64))  # 21 full batches
    assert list(batch_starts(1347, 64, drop_last=False))[-1] == 1344  # ... and the 3-sample one
    assert list(batch_starts(128, 64, drop_last=True)) == [0, 64]
    with pytest.raises(InputError, match="no full batch"):
        batch_starts(10, 64, drop_last=True)


@pytest.mark.parametrize(
    "bad", [Recipe(epochs=0), Recipe(lr=0.0), Recipe(momentum=1.0), Recipe(label_smoothing=1.5)]
)
def test_bad_recipes_are_refused(bad: Recipe) -> None:
    with pytest.raises(InputError):
        bad.validate()
