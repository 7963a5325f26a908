"""Specification of the differentiable losses (docs/METRICS.md, "Losses"; arXiv 2409.16767, 2406.03999).

Expectations come from closed forms and from a plain NumPy float64 reference, not from the code.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.train.losses import (
    LossParts,
    classification_loss,
    cma_loss,
    matrix_information,
    mir_hdr_regulariser,
    total_loss,
)

# ---------------------------------------------------------------- NumPy references


def np_entropy(K: np.ndarray) -> float:
    """H(K) = −Σ λ log λ, λ = eig(K)/n, 0·log 0 = 0 (docs/METRICS.md)."""
    lam = np.clip(np.linalg.eigvalsh(K) / K.shape[0], 0.0, None)
    lam = lam[lam > 0]
    return float(-(lam * np.log(lam)).sum())


def np_gram(X: np.ndarray) -> np.ndarray:
    """Gram of the normalised rows."""
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    return U @ U.T


def np_cma(features: np.ndarray, labels: np.ndarray, anchors: np.ndarray) -> float:
    """Per-class loop: mean over present classes of H(Gram(X_c)) / log|X_c|."""
    values = []
    for c in np.unique(labels):
        X_c = np.vstack([features[labels == c], anchors[c][None, :]])
        values.append(np_entropy(np_gram(X_c)) / math.log(X_c.shape[0]))
    return float(np.mean(values))


def np_mir_hdr(features: np.ndarray, labels: np.ndarray, W: np.ndarray) -> tuple[float, float]:
    """MIR and HDR of K_Z (centred batch features) and K_Y (head rows of the labels)."""
    K_Z = np_gram(features - features.mean(0, keepdims=True))
    K_Y = np_gram(W[labels])
    H1, H2, H12 = np_entropy(K_Z), np_entropy(K_Y), np_entropy(K_Z * K_Y)
    return (H1 + H2 - H12) / min(H1, H2), abs(H1 - H2) / max(H1, H2)


def t(a: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=requires_grad)


@pytest.fixture
def small_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """B=7, d=5, C=3 with class sizes 1, 2, 4 (class 0 has a single sample)."""
    rng = np.random.default_rng(0)
    labels = torch.tensor([2, 0, 1, 2, 1, 2, 2])
    return t(rng.normal(size=(7, 5)), True), labels, t(rng.normal(size=(3, 5)), True)


# ---------------------------------------------------------------- CMA: closed forms


def test_cma_zero_when_features_equal_their_anchor() -> None:
    rng = np.random.default_rng(1)
    anchors = rng.normal(size=(4, 6))
    labels = np.array([0, 0, 1, 3, 3, 3, 0])
    scales = rng.uniform(0.5, 3.0, size=(7, 1))  # positive scales vanish under normalisation
    features = anchors[labels] * scales
    assert cma_loss(t(features), torch.tensor(labels), t(anchors)).item() == pytest.approx(0.0, abs=1e-9)


def test_cma_one_when_class_members_and_anchor_are_orthogonal() -> None:
    d = 8
    E = np.eye(d)
    anchors = np.stack([E[0], E[3], E[6]])  # anchor c is orthogonal to every feature of class c
    features = np.stack([2 * E[1], 0.5 * E[2], 3 * E[4], E[5], 1.5 * E[7]])
    labels = np.array([0, 0, 1, 1, 2])
    value = cma_loss(t(features), torch.tensor(labels), t(anchors)).item()
    assert value == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("theta", [0.1, 0.5, 1.0, math.pi / 2, 2.0, 3.0])
def test_cma_two_member_set_matches_closed_form(theta: float) -> None:
    # Gram [[1, c], [c, 1]] has eigenvalues 1 ± c, so λ = (1 ± c)/2 and H̃ = H / log 2.
    c = math.cos(theta)
    features = np.array([[math.cos(theta), math.sin(theta), 0.0]])
    anchors = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    lam = np.array([(1 + c) / 2, (1 - c) / 2])
    expected = float(-sum(x * math.log(x) for x in lam if x > 0)) / math.log(2)
    value = cma_loss(t(features), torch.tensor([0]), t(anchors)).item()
    assert value == pytest.approx(expected, abs=1e-10)


def test_cma_batched_padding_equals_per_class_loop() -> None:
    rng = np.random.default_rng(2)
    C, d = 6, 5
    sizes = {0: 1, 1: 4, 3: 2, 4: 7, 5: 3}  # class 2 absent; class 4 has |X_c| = 8 > d (rank deficient)
    labels = np.concatenate([np.full(n, c) for c, n in sizes.items()])
    labels = rng.permutation(labels)
    features = rng.normal(size=(labels.size, d))
    anchors = rng.normal(size=(C, d))
    value = cma_loss(t(features), torch.tensor(labels), t(anchors)).item()
    assert value == pytest.approx(np_cma(features, labels, anchors), abs=1e-10)


def test_cma_keeps_the_features_dtype() -> None:
    rng = np.random.default_rng(3)
    features = torch.tensor(rng.normal(size=(5, 4)), dtype=torch.float32)
    anchors = torch.tensor(rng.normal(size=(2, 4)), dtype=torch.float32)
    labels = torch.tensor([0, 1, 1, 0, 1])
    value = cma_loss(features, labels, anchors)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(
        np_cma(features.double().numpy(), labels.numpy(), anchors.double().numpy()), abs=1e-6
    )


# ---------------------------------------------------------------- CMA: gradients


def test_cma_gradcheck(small_case: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
    features, labels, anchors = small_case
    assert torch.autograd.gradcheck(lambda F, A: cma_loss(F, labels, A), (features, anchors))


def test_cma_gradient_descent_decreases_loss() -> None:
    rng = np.random.default_rng(4)
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 0, 1])
    anchors = t(rng.normal(size=(3, 6)))
    features = t(rng.normal(size=(8, 6)), True)
    optimiser = torch.optim.SGD([features], lr=2.0)
    values = []
    for _ in range(20):
        optimiser.zero_grad()
        loss = cma_loss(features, labels, anchors)
        loss.backward()
        optimiser.step()
        values.append(loss.item())
    assert values[-1] < 0.6 * values[0]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(values))


def _degenerate_cases() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(5)
    anchors = rng.normal(size=(3, 4))
    labels = np.array([0, 0, 1, 2, 2, 2])
    same = np.tile(rng.normal(size=(1, 4)), (6, 1))
    E = np.eye(4)
    return {
        "features equal their anchor": (anchors[labels] * 2.0, labels, anchors),
        "all features and anchors equal": (same, labels, same[:3]),
        "orthogonal sets (repeated eigenvalues 1/m)": (
            np.stack([E[1], E[2], E[1], E[1], E[2], E[3]]),
            labels,
            np.stack([E[0], E[0], E[0]]),
        ),
        "set larger than d (zero eigenvalues)": (
            rng.normal(size=(6, 2)),
            np.zeros(6, dtype=int),
            anchors[:, :2],
        ),
        "a zero feature row": (np.vstack([np.zeros((1, 4)), rng.normal(size=(5, 4))]), labels, anchors),
    }


@pytest.mark.parametrize("name", list(_degenerate_cases()))
def test_cma_gradients_finite_in_degenerate_configurations(name: str) -> None:
    features_np, labels_np, anchors_np = _degenerate_cases()[name]
    features, anchors = t(features_np, True), t(anchors_np, True)
    loss = cma_loss(features, torch.tensor(labels_np), anchors)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(features.grad).all() and torch.isfinite(anchors.grad).all()


# ---------------------------------------------------------------- matrix information and the regulariser


def etf_gram(C: int) -> torch.Tensor:
    return (C * torch.eye(C, dtype=torch.float64) - torch.ones(C, C, dtype=torch.float64)) / (C - 1)


@pytest.mark.parametrize(("C", "mir_nc"), [(3, 0.5), (4, 0.753953), (10, 0.952351)])
def test_matrix_information_at_neural_collapse(C: int, mir_nc: float) -> None:
    mi, mir, hdr = matrix_information(etf_gram(C), etf_gram(C))
    expected_mi = (math.log(C - 1) + (C - 2) * math.log(C - 2)) / (C - 1)
    assert mi.item() == pytest.approx(expected_mi, abs=1e-10)
    assert mir.item() == pytest.approx(mir_nc, abs=1e-6)
    assert hdr.item() == pytest.approx(0.0, abs=1e-12)


def test_matrix_information_identity_and_ones() -> None:
    n = 5
    identity, ones = torch.eye(n, dtype=torch.float64), torch.ones(n, n, dtype=torch.float64)
    mi, mir, hdr = matrix_information(identity, identity)
    assert (mi.item(), mir.item(), hdr.item()) == pytest.approx((math.log(n), 1.0, 0.0), abs=1e-12)
    mi, mir, hdr = matrix_information(identity, ones)  # H(ones) = 0: MI = 0, HDR = 1, MIR floored to 0
    assert (mi.item(), mir.item(), hdr.item()) == pytest.approx((0.0, 0.0, 1.0), abs=1e-9)


def test_regulariser_matches_numpy_reference() -> None:
    rng = np.random.default_rng(6)
    features, W = rng.normal(size=(9, 6)), rng.normal(size=(4, 6))
    labels = rng.integers(0, 4, size=9)
    mir, hdr = np_mir_hdr(features, labels, W)
    value = mir_hdr_regulariser(t(features), torch.tensor(labels), t(W), 0.7, 0.2, target="max").item()
    assert value == pytest.approx(-0.7 * mir + 0.2 * hdr, abs=1e-10)


def test_regulariser_gradcheck(small_case: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
    features, labels, W = small_case
    assert torch.autograd.gradcheck(
        lambda F, H: mir_hdr_regulariser(F, labels, H, 0.7, 0.3, target="max", head="trainable"),
        (features, W),
    )


def test_regulariser_gradients_finite_for_one_class_batch() -> None:
    rng = np.random.default_rng(7)
    features, W = t(rng.normal(size=(5, 4)), True), t(rng.normal(size=(3, 4)), True)
    value = mir_hdr_regulariser(features, torch.zeros(5, dtype=torch.long), W, 1.0, 1.0, head="trainable")
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(features.grad).all() and torch.isfinite(W.grad).all()


# ---------------------------------------------------------------- total loss


def np_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return float(-log_probs[np.arange(labels.size), labels].mean())


@pytest.fixture
def batch() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(8)
    return {
        "logits": rng.normal(size=(8, 3)),
        "labels": np.array([0, 1, 2, 2, 1, 0, 0, 2]),
        "features": rng.normal(size=(8, 5)),
        "anchors": rng.normal(size=(3, 5)),
    }


def _total(batch: dict[str, np.ndarray], **kwargs: object) -> LossParts:
    return total_loss(
        t(batch["logits"]), torch.tensor(batch["labels"]), t(batch["features"]), t(batch["anchors"]), **kwargs
    )


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_total_loss_blends_cross_entropy_and_cma(batch: dict[str, np.ndarray], lam: float) -> None:
    ce = np_cross_entropy(batch["logits"], batch["labels"])
    cma = np_cma(batch["features"], batch["labels"], batch["anchors"])
    parts = _total(batch, cma_weight=lam)
    assert parts.total.item() == pytest.approx((1 - lam) * ce + lam * cma, abs=1e-10)
    assert parts.ce.item() == pytest.approx(ce, abs=1e-10)
    assert parts.cma.item() == pytest.approx(cma, abs=1e-10)
    assert parts.reg.item() == 0.0


def test_total_loss_adds_the_regulariser(batch: dict[str, np.ndarray]) -> None:
    W = np.random.default_rng(9).normal(size=(3, 5))
    mir, hdr = np_mir_hdr(batch["features"], batch["labels"], W)
    ce = np_cross_entropy(batch["logits"], batch["labels"])
    parts = _total(
        batch, cma_weight=0.0, mir_weight=0.5, hdr_weight=0.25, head_weight=t(W), regularizer_target="max"
    )
    assert parts.reg.item() == pytest.approx(-0.5 * mir + 0.25 * hdr, abs=1e-10)
    assert parts.total.item() == pytest.approx(ce - 0.5 * mir + 0.25 * hdr, abs=1e-10)


@pytest.mark.parametrize("lam", [-0.1, 1.5, float("nan")])
def test_total_loss_rejects_cma_weight_outside_unit_interval(
    batch: dict[str, np.ndarray], lam: float
) -> None:
    with pytest.raises(InputError, match="--cma-weight"):
        _total(batch, cma_weight=lam)


def test_total_loss_rejects_anchor_shape(batch: dict[str, np.ndarray]) -> None:
    batch["anchors"] = batch["anchors"][:, :4]
    with pytest.raises(InputError, match=r"\(3, 4\).*\(3, 5\)"):
        _total(batch, cma_weight=0.5)


def test_total_loss_needs_head_weight_for_regulariser(batch: dict[str, np.ndarray]) -> None:
    with pytest.raises(InputError, match="head_weight"):
        _total(batch, cma_weight=0.5, mir_weight=0.1)


# ---------------------------------------------------------------- label smoothing


def np_smoothed_cross_entropy(logits: np.ndarray, labels: np.ndarray, eps: float) -> float:
    """−Σ_c q_c log softmax(z)_c with q = (1 − ε)·onehot(y) + ε/C, averaged over the batch."""
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    C = logits.shape[1]
    q = np.full(logits.shape, eps / C)
    q[np.arange(labels.size), labels] += 1.0 - eps
    return float(-(q * log_probs).sum(1).mean())


def test_label_smoothing_zero_is_the_plain_loss(batch: dict[str, np.ndarray]) -> None:
    """ε = 0: bit-identical to the plain cross-entropy, in value and in gradient."""
    logits = t(batch["logits"]).requires_grad_(True)
    labels = torch.tensor(batch["labels"])
    smoothed = classification_loss(logits, labels, 0.0)
    (grad_smoothed,) = torch.autograd.grad(smoothed, logits)
    plain = torch.nn.functional.cross_entropy(logits, labels)
    (grad_plain,) = torch.autograd.grad(plain, logits)
    assert torch.equal(smoothed, plain) and torch.equal(grad_smoothed, grad_plain)
    assert smoothed.item() == pytest.approx(np_cross_entropy(batch["logits"], batch["labels"]), abs=1e-12)
    parts = _total(batch, cma_weight=0.0, label_smoothing=0.0)
    assert torch.equal(parts.ce, plain.detach()) and torch.equal(parts.total, parts.ce)


@pytest.mark.parametrize("eps", [0.05, 0.2, 1.0])
def test_label_smoothing_matches_numpy_reference(batch: dict[str, np.ndarray], eps: float) -> None:
    expected = np_smoothed_cross_entropy(batch["logits"], batch["labels"], eps)
    value = classification_loss(t(batch["logits"]), torch.tensor(batch["labels"]), eps)
    assert value.item() == pytest.approx(expected, abs=1e-12)
    assert value.item() != pytest.approx(np_cross_entropy(batch["logits"], batch["labels"]), abs=1e-6)
    parts = _total(batch, cma_weight=0.3, label_smoothing=eps)
    assert parts.ce.item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("eps", [-0.1, 1.5, float("nan")])
def test_label_smoothing_outside_unit_interval_is_refused(batch: dict[str, np.ndarray], eps: float) -> None:
    with pytest.raises(InputError, match="--label-smoothing"):
        _total(batch, cma_weight=0.0, label_smoothing=eps)


def test_cma_rejects_bad_inputs() -> None:
    features, anchors = torch.zeros(3, 4), torch.ones(2, 4)
    with pytest.raises(InputError, match=r"\(2, 5\)"):
        cma_loss(features, torch.tensor([0, 1, 0]), torch.ones(2, 5))
    with pytest.raises(InputError, match=r"0\.\.1"):
        cma_loss(features, torch.tensor([0, 2, 0]), anchors)
    with pytest.raises(InputError, match="labels"):
        cma_loss(features, torch.tensor([0, 1]), anchors)
