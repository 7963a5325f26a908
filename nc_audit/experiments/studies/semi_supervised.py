"""Semi-supervised digits: a few labels per class, FixMatch on the rest, with and without MIR/HDR terms.

For each number of labels per class K, each seed and each setting, the sample model (built-in ``mlp``,
3×64 with BatchNorm) is trained from scratch (nc_audit.train.semi) on a seeded stratified subset of K
labeled samples per class of the train split; the other train samples are the unlabeled set (their
labels are used only to report the pseudo-labels' accuracy). Settings:

- ``supervised``: the labeled samples alone (weak augmentation), the baseline;
- ``fixmatch`` with λ: FixMatch (τ = 0.95, μ = 7, λ_u = 1) plus the MIR/HDR regulariser (the recipe's
  form, nc/detached by default: nc_audit.train.regularizer) on the labeled and confidently
  pseudo-labeled features (λ = 0: plain FixMatch).

Each run is measured on the test split (accuracy) and on the whole train split with its true labels
(NC1, MIR, HDR of the learned features). Final weights: DIR/runs/NAME.pt. Resumable
(nc_audit.experiments.studies.records); the summary is mean ± std over seeds per (K, setting).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from nc_audit.core.errors import InputError
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.experiments.evaluation import evaluate
from nc_audit.experiments.studies.records import (
    OnRecord,
    Run,
    StudyRecords,
    plain,
    run_study,
    write_results,
)
from nc_audit.experiments.studies.summary import summarise
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.data.datasets import load_dataset
from nc_audit.models.registry import architecture_record
from nc_audit.train.data import stratified_subset
from nc_audit.train.semi import SemiRecipe, train_semi_supervised

KIND = "semi-supervised"
COLUMNS = (
    ("test_accuracy", "test accuracy", lambda r: r["test"]["accuracy"]),
    ("mask_rate", "confident share", lambda r: r["stats"]["mask_rate"]),
    ("pseudo_label_accuracy", "pseudo-label accuracy", lambda r: r["stats"]["pseudo_label_accuracy"]),
    ("nc1", "NC1", lambda r: r["train"]["metrics"]["nc1"]),
    ("mir", "MIR", lambda r: r["train"]["metrics"]["mir"]),
    ("hdr", "HDR", lambda r: r["train"]["metrics"]["hdr"]),
)


@dataclass(frozen=True)
class SemiSupervisedStudy:
    """Labels per class, regulariser weights λ (FixMatch runs), seeds, the baseline, the model, the recipe."""

    labels_per_class: tuple[int, ...] = (4, 10)
    weights: tuple[float, ...] = (0.0, 0.1, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    supervised_baseline: bool = True
    data: str = "digits"
    hidden: tuple[int, ...] = (64, 64, 64)
    recipe: SemiRecipe = field(default_factory=SemiRecipe)

    @classmethod
    def quick(cls) -> SemiSupervisedStudy:
        """A few seconds: 4 labels per class, λ ∈ {0, 0.1}, one seed, a narrow model, 20 steps, τ = 0.3."""
        return cls(labels_per_class=(4,), weights=(0.0, 0.1), seeds=(0,), hidden=(16, 16),
                   recipe=SemiRecipe(steps=20, batch_size=16, unlabeled_ratio=2, threshold=0.3))  # fmt: skip

    def validate(self) -> None:
        if not self.labels_per_class or not self.seeds or not (self.weights or self.supervised_baseline):
            raise InputError("semi-supervised study: need labels per class, seeds and at least one setting")
        if min(self.labels_per_class) < 1 or min(self.seeds) < 0:
            raise InputError("labels per class must be positive and seeds non-negative")
        for weight in self.weights:
            if not (math.isfinite(weight) and weight >= 0.0):
                raise InputError(f"regulariser weights λ must be non-negative numbers, got {weight}")
        self.recipe.validate()

    def settings(self) -> dict[str, Any]:
        document: dict[str, Any] = plain(asdict(self))
        return document


def _setting(method: str, weight: float | None) -> str:
    return "supervised" if method == "supervised" else f"FixMatch λ={weight:g}"


def run_semi_supervised(
    out: Path | str,
    study: SemiSupervisedStudy | None = None,
    *,
    resume: bool = False,
    tracker: Tracker | None = None,
    on_record: OnRecord | None = None,
) -> dict[str, Any]:
    """Run (or resume) the study in ``out``; returns the results document (also DIR/results.json)."""
    study = study or SemiSupervisedStudy()
    study.validate()
    tracker = tracker or SilentTracker()
    out = Path(out)
    train, test = load_dataset(study.data, "train"), load_dataset(study.data, "test")
    images = train.inputs
    if (
        len(train.input_shape) == 0
        or not isinstance(images, torch.Tensor)
        or not torch.is_floating_point(images)
    ):
        raise InputError(f"{study.data}: the semi-supervised study needs images (one float array of inputs)")
    config = {"input_dim": math.prod(train.input_shape), "hidden": list(study.hidden), "batch_norm": True}
    record = architecture_record("mlp", config, train.num_classes)
    records = StudyRecords.open(out, KIND, study.settings(), resume)
    (out / "runs").mkdir(exist_ok=True)
    device = torch.device("cpu")

    def work(k: int, method: str, weight: float | None, seed: int) -> Any:
        def one_run(inner: Tracker) -> dict[str, Any]:
            subset = stratified_subset(train.labels, train.num_classes, k, seed)  # (K·C,)
            rest = torch.ones(len(train), dtype=torch.bool)
            rest[subset] = False
            lam = weight or 0.0
            recipe = replace(study.recipe, unlabeled_weight=0.0 if method == "supervised" else 1.0,
                             mir_weight=lam, hdr_weight=lam)  # fmt: skip
            model, stats = train_semi_supervised(
                record, (images[subset], train.labels[subset]), images[rest], recipe, seed,
                unlabeled_labels=train.labels[rest], tracker=inner,
                description=f"train K={k} {_setting(method, weight)} seed {seed}",
            )  # fmt: skip
            name = f"k_{k}-{method}" + ("" if weight is None else f"_{weight:g}") + f"-seed_{seed}"
            path = out / "runs" / f"{name}.pt"
            meta = {"step": recipe.steps, "dataset": train.spec, "recipe": recipe.to_dict(), "seed": seed,
                    "labeled": subset.tolist()}  # fmt: skip
            save_checkpoint(path, model.state_dict(), record, meta)
            return {"labels_per_class": k, "method": method, "lam": weight, "setting": _setting(method, weight),
                    "seed": seed, "checkpoint": str(path), "stats": stats,
                    "train": evaluate(model, "head", train, device), "test": evaluate(model, "head", test, device)}  # fmt: skip

        return one_run

    settings: list[tuple[str, float | None]] = [("supervised", None)] if study.supervised_baseline else []
    settings += [("fixmatch", weight) for weight in study.weights]
    runs = [
        Run(
            f"k={k},{method}" + ("" if w is None else f",lam={w:g}") + f",seed={seed}",
            f"K={k} {_setting(method, w)} seed {seed}",
            work(k, method, w, seed),
        )
        for k in study.labels_per_class
        for method, w in settings
        for seed in study.seeds
    ]
    results = run_study(records, runs, tracker, on_record)
    summary = summarise(results, ["labels_per_class", "setting"], [(name, get) for name, _, get in COLUMNS])
    return write_results(records, record, train.num_classes, results, summary)
