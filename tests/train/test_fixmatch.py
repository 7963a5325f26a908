"""The FixMatch step (nc_audit.train.fixmatch) and the 8×8 augmentations (nc_audit.train.augment).

The reference is plain NumPy float64: the forward pass of the BatchNorm MLP over the concatenated batch
(train-mode BatchNorm: batch mean and biased variance), softmax of the weak view, the mask max p ≥ τ, the
pseudo-labels argmax p, and the losses as FixMatch defines them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nc_audit.models.registry import architecture_record, build_model
from nc_audit.train.augment import STRONG, WEAK, Augmentation, cutout, shift
from nc_audit.train.fixmatch import fixmatch_step, pseudo_labels
from nc_audit.train.losses import mir_hdr_regulariser

pytestmark = pytest.mark.usefixtures("one_thread")


def np_forward(
    state: dict[str, np.ndarray], x: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray]:
    """(logits, features) of mlp [Linear → BatchNorm (train mode) → ReLU]×L → head, in float64."""
    h = x.reshape(len(x), -1)
    layer = 1
    while f"body.{layer}.weight" in state:
        h = h @ state[f"body.{layer}.weight"].T + state[f"body.{layer}.bias"]
        mean, var = h.mean(0), h.var(0)  # biased variance, as BatchNorm normalises in train mode
        h = (h - mean) / np.sqrt(var + eps) * state[f"body.{layer + 1}.weight"] + state[
            f"body.{layer + 1}.bias"
        ]
        h = np.maximum(h, 0.0)
        layer += 3
    return h @ state["head.weight"].T + state["head.bias"], h


def np_cross_entropy_rows(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return -log_p[np.arange(labels.size), labels]


@pytest.fixture
def batch() -> dict:
    """A float64 BatchNorm MLP and a fixed batch: 6 labeled, 10 unlabeled (weak and strong views)."""
    torch.manual_seed(3)
    model = build_model(
        architecture_record("mlp", {"input_dim": 64, "hidden": [12, 8], "batch_norm": True}, 5)
    )
    model = model.double().train()
    rng = np.random.default_rng(4)
    return {
        "model": model,
        "labeled": rng.uniform(size=(6, 64)),
        "labels": np.array([0, 1, 2, 3, 4, 0]),
        "weak": rng.uniform(size=(10, 64)),
        "strong": rng.uniform(size=(10, 64)),
    }


def test_fixmatch_step_on_a_fixed_batch_equals_the_numpy_reference(batch: dict) -> None:
    model = batch["model"]
    state = {
        k: v.detach().numpy().astype(np.float64)
        for k, v in model.state_dict().items()
        if v.is_floating_point()
    }
    inputs = np.concatenate([batch["labeled"], batch["weak"], batch["strong"]])
    logits, _ = np_forward(state, inputs)
    weak_logits, strong_logits = logits[6:16], logits[16:]
    p = np.exp(weak_logits - weak_logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    confidence = p.max(1)
    threshold = float(np.median(confidence))  # some pass, some do not
    expected_mask = confidence >= threshold
    expected_labels = p.argmax(1)
    assert 0 < expected_mask.sum() < expected_mask.size

    step = fixmatch_step(model, *(torch.from_numpy(batch[k]) for k in ("labeled", "labels", "weak", "strong")),
                         threshold=threshold, unlabeled_weight=0.7)  # fmt: skip

    assert step.mask.tolist() == expected_mask.tolist()
    assert step.pseudo_labels.tolist() == expected_labels.tolist()
    supervised = np_cross_entropy_rows(logits[:6], batch["labels"]).mean()
    unsupervised = (
        np_cross_entropy_rows(strong_logits, expected_labels) * expected_mask
    ).sum() / expected_mask.size
    assert step.supervised.item() == pytest.approx(supervised, rel=1e-10)
    assert step.unsupervised.item() == pytest.approx(unsupervised, rel=1e-10)
    assert step.total.item() == pytest.approx(supervised + 0.7 * unsupervised, rel=1e-10)
    assert step.reg.item() == 0.0


def test_the_regulariser_sees_labels_and_confident_pseudo_labels(batch: dict) -> None:
    """−λ·MIR + λ·HDR on [labeled features; confident strong features] with [labels; pseudo-labels]."""
    model = batch["model"]
    tensors = [torch.from_numpy(batch[k]) for k in ("labeled", "labels", "weak", "strong")]
    plain = fixmatch_step(model, *tensors, threshold=0.0)
    step = fixmatch_step(model, *tensors, threshold=0.0, mir_weight=0.3, hdr_weight=0.2)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items() if v.is_floating_point()}
    _, features = np_forward(state, np.concatenate([batch["labeled"], batch["weak"], batch["strong"]]))
    reg_features = np.concatenate([features[:6], features[16:]])  # every strong view passes τ = 0
    reg_labels = np.concatenate([batch["labels"], step.pseudo_labels.numpy()])
    expected = mir_hdr_regulariser(torch.from_numpy(reg_features), torch.from_numpy(reg_labels),
                                   model.head.weight.detach(), 0.3, 0.2)  # fmt: skip
    assert bool(step.mask.all())
    assert step.reg.item() == pytest.approx(expected.item(), rel=1e-8)
    assert step.total.item() == pytest.approx(plain.total.item() + expected.item(), rel=1e-8)


def test_pseudo_labels_carry_no_gradient_and_threshold_is_inclusive() -> None:
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 5.0]], requires_grad=True)
    labels, mask = pseudo_labels(logits, 0.5)
    assert labels.tolist() == [0, 0, 1] and mask.tolist() == [True, True, True]  # p = 0.5 passes τ = 0.5
    assert not labels.requires_grad and not mask.requires_grad
    assert pseudo_labels(logits, 0.9)[1].tolist() == [False, False, True]


def test_the_supervised_baseline_runs_the_labeled_batch_alone(batch: dict) -> None:
    model = batch["model"]
    step = fixmatch_step(model, torch.from_numpy(batch["labeled"]), torch.from_numpy(batch["labels"]),
                         torch.from_numpy(batch["weak"]), torch.from_numpy(batch["strong"]), unlabeled_weight=0.0)  # fmt: skip
    state = {k: v.detach().numpy() for k, v in model.state_dict().items() if v.is_floating_point()}
    logits, _ = np_forward(state, batch["labeled"])  # BatchNorm statistics of the labeled batch only
    assert step.total.item() == pytest.approx(
        np_cross_entropy_rows(logits, batch["labels"]).mean(), rel=1e-10
    )
    assert step.mask.numel() == 0


# ---------------------------------------------------------------- augmentations


def test_shift_moves_each_image_by_its_own_offset_with_zero_fill() -> None:
    images = torch.arange(1, 3 * 64 + 1, dtype=torch.float64).reshape(3, 8, 8)
    generator = torch.Generator().manual_seed(0)
    moved = shift(images, 2, generator)
    replay = torch.Generator().manual_seed(0)
    dy, dx = torch.randint(-2, 3, (3,), generator=replay), torch.randint(-2, 3, (3,), generator=replay)
    for n in range(3):
        expected = np.zeros((8, 8))
        src = images[n].numpy()
        for r in range(8):
            for c in range(8):
                if 0 <= r - dy[n] < 8 and 0 <= c - dx[n] < 8:
                    expected[r, c] = src[r - dy[n], c - dx[n]]
        assert np.array_equal(moved[n].numpy(), expected), (n, int(dy[n]), int(dx[n]))


def test_cutout_zeroes_one_clipped_square_per_image() -> None:
    images = torch.ones(50, 8, 8)
    holes = cutout(images, 3, torch.Generator().manual_seed(1)) == 0  # (50, 8, 8)
    for hole in holes:
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        assert 2 <= len(rows) <= 3 and 2 <= len(cols) <= 3  # 3×3, or clipped to 2 at a border
        assert int(hole.sum()) == len(rows) * len(cols)  # one rectangle
        assert int(rows.max() - rows.min()) == len(rows) - 1 and int(cols.max() - cols.min()) == len(cols) - 1


def test_views_keep_the_shape_and_range_and_are_seeded() -> None:
    x = torch.rand(20, 64)
    for view in (WEAK, STRONG, Augmentation(max_shift=0, noise=0.5)):
        first = view(x, torch.Generator().manual_seed(7))
        again = view(x, torch.Generator().manual_seed(7))
        assert first.shape == x.shape and torch.equal(first, again)
        assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    images = x.reshape(20, 1, 8, 8)
    assert STRONG(images, torch.Generator().manual_seed(7)).shape == (20, 1, 8, 8)
    assert torch.equal(
        WEAK(images, torch.Generator().manual_seed(7)).reshape(20, 64),
        WEAK(x, torch.Generator().manual_seed(7)),
    )
