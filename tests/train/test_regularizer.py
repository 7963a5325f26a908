"""The MIR/HDR regulariser forms (nc_audit.train.regularizer): the collapsed reference, and that a few
gradient steps move a constructed batch towards each form's target (issue 22, item 1)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.core.linalg import unit_rows
from nc_audit.metrics.information import nc_targets
from nc_audit.train.config import FinetuneConfig
from nc_audit.train.matrix_entropy import matrix_information
from nc_audit.train.regularizer import (
    Head,
    RegularizerForm,
    Target,
    batch_grams,
    collapsed_reference,
    mir_hdr_regulariser,
    simplex_etf,
)

C, D = 5, 8


def _measure(
    features: torch.Tensor, labels: torch.Tensor, W: torch.Tensor, target: str
) -> tuple[float, float]:
    K_Z, K_Y = batch_grams(features.detach(), labels, W.detach(), target)
    info = matrix_information(K_Z, K_Y)
    return info.mir.item(), info.hdr.item()


def _collapsed_batch(labels: torch.Tensor, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Features on a simplex ETF embedded in R^D, shifted by a global mean; the head on the same ETF."""
    rotation = torch.linalg.qr(
        torch.randn(D, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    )[0]
    etf = simplex_etf(C) @ rotation[:C]  # (C, D)
    features = scale * etf[labels] + torch.linspace(-1.0, 1.0, D, dtype=torch.float64)  # (B, D)
    return features, 2.0 * etf


def _random_batch(seed: int = 0, B: int = 30) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(B) % C
    features = torch.randn(B, D, dtype=torch.float64, generator=generator)
    W = torch.randn(C, D, dtype=torch.float64, generator=generator)
    return features, labels, W


@pytest.mark.parametrize("num_classes", [3, 4, 10])
def test_collapsed_reference_of_a_balanced_batch_is_mir_nc(num_classes: int) -> None:
    labels = torch.arange(4 * num_classes) % num_classes
    reference = collapsed_reference(labels, num_classes)
    assert reference.mir.item() == pytest.approx(nc_targets(num_classes)["mir"], abs=1e-10)
    assert reference.hdr.item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("target", ["nc", "max"])
@pytest.mark.parametrize("labels", [[0, 0, 0, 0, 0, 0, 1, 2, 3, 4], [1, 1, 3, 4, 4, 4], [2, 2, 3, 0]])
def test_collapsed_reference_equals_the_batch_computation(target: Target, labels: list[int]) -> None:
    """The k×k shortcut against the B×B Grams of an exactly collapsed batch."""
    y = torch.tensor(labels)
    etf = simplex_etf(C)
    K_Z, K_Y = batch_grams(etf[y], y, etf, target)
    direct = matrix_information(K_Z, K_Y)
    shortcut = collapsed_reference(y, C, target)
    for name in ("mi", "mir", "hdr"):
        assert getattr(shortcut, name).item() == pytest.approx(getattr(direct, name).item(), abs=1e-10)


def test_batch_mean_centring_is_not_collapsed_for_an_unbalanced_batch() -> None:
    """Why the nc form centres by the mean of the class means: with the batch mean an exactly collapsed
    unbalanced batch has HDR > 0, so minimising HDR would push it away from collapse."""
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 2, 3, 4])
    assert collapsed_reference(labels, C, "max").hdr.item() > 0.01
    assert collapsed_reference(labels, C, "nc").hdr.item() == pytest.approx(0.0, abs=1e-12)


def test_nc_form_is_zero_at_exact_collapse_whatever_the_class_counts() -> None:
    labels = torch.tensor([0, 0, 0, 1, 2, 2, 3, 4, 4, 4, 4])
    features, W = _collapsed_batch(labels)
    value = mir_hdr_regulariser(features, labels, W, 1.0, 1.0)
    assert value.item() == pytest.approx(0.0, abs=1e-9)


def test_max_form_pushes_a_collapsed_batch_away_from_collapse() -> None:
    """Finding 1 of issue 22 in miniature: from (a small perturbation of) collapse, following the max
    form raises MIR past its collapsed value, while the nc form is at its minimum there."""
    labels = torch.arange(20) % C
    features, W = _collapsed_batch(labels)
    features = features + 0.01 * torch.randn(
        features.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    features.requires_grad_(True)
    W.requires_grad_(True)
    goal = collapsed_reference(labels, C, "max").mir.item()
    optimizer = torch.optim.Adam([features, W], lr=0.05)
    for _ in range(40):
        optimizer.zero_grad()
        mir_hdr_regulariser(features, labels, W, 1.0, 0.0, target="max", head="trainable").backward()
        optimizer.step()
    mir, hdr = _measure(features, labels, W, "max")
    assert mir > goal + 0.1 and hdr > 0.05  # MIR → 1 and the two Gram entropies drift apart


def _descend(form: RegularizerForm, steps: int = 60, lr: float = 0.05) -> tuple[torch.Tensor, ...]:
    features, labels, W = _random_batch()
    start_W = W.clone()
    features.requires_grad_(True)
    W.requires_grad_(True)
    optimizer = torch.optim.Adam([features, W], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        mir_hdr_regulariser(features, labels, W, form.mir_weight, form.hdr_weight, target=form.target,
                            head=form.head).backward()  # fmt: skip
        optimizer.step()
    return features.detach(), labels, W.detach(), start_W


@pytest.mark.parametrize("head", ["detached", "trainable"])
def test_nc_form_moves_the_batch_towards_the_collapsed_values(head: Head) -> None:
    features, labels, W = _random_batch()
    goal = collapsed_reference(labels, C)
    mir0, hdr0 = _measure(features, labels, W, "nc")
    moved, _, moved_W, start_W = _descend(RegularizerForm(1.0, 1.0, "nc", head))
    mir1, hdr1 = _measure(moved, labels, moved_W, "nc")
    assert abs(mir1 - goal.mir.item()) < 0.5 * abs(mir0 - goal.mir.item())
    assert abs(hdr1 - goal.hdr.item()) < 0.5 * abs(hdr0 - goal.hdr.item())
    assert torch.equal(moved_W, start_W) == (head == "detached")


@pytest.mark.parametrize("head", ["detached", "trainable"])
def test_max_form_raises_mir_and_lowers_hdr(head: Head) -> None:
    features, labels, W = _random_batch()
    mir0, hdr0 = _measure(features, labels, W, "max")
    moved, _, moved_W, start_W = _descend(RegularizerForm(1.0, 1.0, "max", head))
    mir1, hdr1 = _measure(moved, labels, moved_W, "max")
    assert mir1 > mir0 + 0.05 and hdr1 < hdr0
    assert torch.equal(moved_W, start_W) == (head == "detached")


@pytest.mark.parametrize("classes", [1, 2])
def test_nc_form_is_zero_for_a_batch_of_fewer_than_three_classes(classes: int) -> None:
    features, _, W = _random_batch()
    features.requires_grad_(True)
    value = mir_hdr_regulariser(features, torch.arange(30) % classes, W, 1.0, 1.0)
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(features.grad).all()


def test_detached_head_gets_no_gradient() -> None:
    features, labels, W = _random_batch()
    W.requires_grad_(True)
    features.requires_grad_(True)
    mir_hdr_regulariser(features, labels, W, 1.0, 1.0).backward()
    assert W.grad is None and features.grad is not None and torch.isfinite(features.grad).all()


def test_grams_are_unit_diagonal() -> None:
    features, labels, W = _random_batch()
    targets: tuple[Target, ...] = ("nc", "max")
    for target in targets:
        K_Z, K_Y = batch_grams(features, labels, W, target)
        assert torch.allclose(torch.diagonal(K_Z), torch.ones(30, dtype=torch.float64))
        assert torch.allclose(K_Y, unit_rows(W[labels]) @ unit_rows(W[labels]).T)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (RegularizerForm(1.0, 0.0, "up", "detached"), "--regularizer-target"),  # type: ignore[arg-type]  # invalid on purpose
        (RegularizerForm(1.0, 0.0, "nc", "frozen"), "--regularizer-head"),  # type: ignore[arg-type]  # invalid on purpose
        (RegularizerForm(-1.0, 0.0), "--mir-weight"),
        (RegularizerForm(0.0, math.nan), "--hdr-weight"),
    ],
)
def test_bad_forms_are_refused_in_one_line(form: RegularizerForm, message: str) -> None:
    with pytest.raises(InputError, match=message):
        form.validate()


def test_finetune_config_records_the_form_only_while_the_regulariser_is_on(tmp_path: Path) -> None:
    plain = FinetuneConfig(out=tmp_path, cma_weight=0.0, data="digits", checkpoint=tmp_path / "a.pt")
    assert "regularizer_target" not in plain.resume_settings()
    on = FinetuneConfig(out=tmp_path, cma_weight=0.0, data="digits", checkpoint=tmp_path / "a.pt", mir_weight=0.1,
                        regularizer_target="max")  # fmt: skip
    assert on.resume_settings()["regularizer_target"] == "max"
    assert on.resume_settings()["regularizer_head"] == "detached"
    with pytest.raises(InputError, match="--regularizer-target"):
        FinetuneConfig(out=tmp_path, cma_weight=0.0, data="digits", checkpoint=tmp_path / "a.pt",
                       regularizer_target="up").validate()  # type: ignore[arg-type]  # invalid on purpose  # fmt: skip


def test_finetune_refuses_an_unknown_form_before_writing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nc_audit.cli import app

    out = tmp_path / "ft"
    args = ["finetune", "sample_checkpoints/digits-mlp/epoch_0300.pt", "--data", "digits", "--cma-weight", "0",
            "--mir-weight", "0.1", "--regularizer-head", "frozen", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--regularizer-head must be one of detached, trainable" in result.output
    assert not out.exists()
