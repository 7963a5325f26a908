"""The MIR/HDR regulariser study: the sample model trained from scratch with each form of the regulariser.

Each run trains the sample trajectory's model (built-in ``mlp``, 3 hidden layers of 64 with BatchNorm)
with the sample's recipe (nc_audit.train.recipe: SGD momentum 0.9, lr 0.05 cosine, weight decay 5e-3,
batch 64, last partial batch dropped, 300 epochs), the loss being cross-entropy plus the batch
regulariser R with λ_mir = λ_hdr = λ in one of its forms (nc_audit.train.regularizer):

- ``nc/detached`` (the default form): λ·|MIR − MIR*| + λ·|HDR − HDR*| towards the batch's collapsed
  values, the head rows detached;
- ``max/trainable`` (the form shipped first): −λ·MIR + λ·HDR with the head rows trainable.

λ = 0 is plain cross-entropy, one run per seed shared by both forms. Every run is measured like the
label-smoothing study: accuracy, loss and every class-level metric on the train split, accuracy on the
test split (nc_audit.experiments.evaluation). Final weights: DIR/runs/NAME.pt. Resumable
(nc_audit.experiments.studies.records); the summary is mean ± std over seeds per (λ, form).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from nc_audit.core.errors import InputError
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.experiments.evaluation import evaluate
from nc_audit.experiments.studies.records import (
    OnRecord,
    Run,
    plain,
    run_study,
    write_results,
)
from nc_audit.experiments.studies.setup import open_mlp_study
from nc_audit.experiments.studies.summary import summarise
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.data.datasets import ArrayDataset
from nc_audit.train.recipe import Recipe, train_from_scratch
from nc_audit.train.regularizer import Head, RegularizerForm, Target

KIND = "regularizer"
#: The forms compared: (target, head). The first is the default form of ``finetune`` and FixMatch.
FORMS: tuple[tuple[Target, Head], ...] = (("nc", "detached"), ("max", "trainable"))
#: One setting of the study: (λ, target, head); target and head are None for λ = 0.
Setting = tuple[float, Target | None, Head | None]
#: The setting of the λ = 0 runs (no regulariser, whatever the form).
PLAIN = "none"
#: Summary columns: (name, header, how to read it from a run's record).
COLUMNS = (
    ("test_accuracy", "test accuracy", lambda r: r["test"]["accuracy"]),
    ("nc1", "NC1", lambda r: r["train"]["metrics"]["nc1"]),
    ("mir", "MIR", lambda r: r["train"]["metrics"]["mir"]),
    ("hdr", "HDR", lambda r: r["train"]["metrics"]["hdr"]),
    ("h_head", "H(K_W)", lambda r: r["train"]["metrics"]["h_head"]),
    ("train_accuracy", "train accuracy", lambda r: r["train"]["accuracy"]),
)


@dataclass(frozen=True)
class RegularizerStudy:
    """What the study trains: λ values, forms, seeds, the data, the MLP's hidden widths and the recipe."""

    weights: tuple[float, ...] = (0.0, 0.1, 1.0)
    forms: tuple[tuple[Target, Head], ...] = FORMS
    seeds: tuple[int, ...] = (0, 1, 2)
    data: str = "digits"
    hidden: tuple[int, ...] = (64, 64, 64)
    recipe: Recipe = field(default_factory=Recipe)

    @classmethod
    def quick(cls) -> RegularizerStudy:
        """A few seconds: λ ∈ {0, 1}, one seed, a narrow model, 2 epochs (for tests and a first look)."""
        return cls(weights=(0.0, 1.0), seeds=(0,), hidden=(16, 16), recipe=Recipe(epochs=2))

    def validate(self) -> None:
        if not self.weights or not self.seeds or not self.forms:
            raise InputError("regularizer study: need at least one λ, one form and one seed")
        for weight in self.weights:
            if not (math.isfinite(weight) and weight >= 0.0):
                raise InputError(f"regulariser weights λ must be non-negative numbers, got {weight}")
        for target, head in self.forms:
            RegularizerForm(1.0, 1.0, target, head).validate()
        if any(seed < 0 for seed in self.seeds):
            raise InputError(f"seeds must be non-negative integers, got {list(self.seeds)}")
        self.recipe.validate()

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = plain(asdict(self))
        return settings

    def plan(self) -> list[Setting]:
        """(λ, target, head) of every setting, λ = 0 once (target and head None)."""
        settings: list[Setting] = []
        for weight in self.weights:
            if weight == 0.0:
                settings.append((0.0, None, None))
            else:
                settings += [(weight, target, head) for target, head in self.forms]
        return settings


def setting_name(weight: float, target: str | None, head: str | None) -> str:
    """``none`` for λ = 0, else ``nc/detached`` and the like."""
    return PLAIN if target is None else f"{target}/{head}"


def run_name(weight: float, target: str | None, head: str | None, seed: int) -> str:
    form = "" if target is None else f"-{target}_{head}"
    return f"lam_{weight:g}{form}-seed_{seed}"


def _train_and_measure(
    study: RegularizerStudy,
    record: dict[str, Any],
    splits: tuple[ArrayDataset, ArrayDataset],
    setting: Setting,
    seed: int,
    out: Path,
    inner: Tracker,
) -> dict[str, Any]:
    weight, target, head = setting
    train, test = splits
    form = None if target is None or head is None else RegularizerForm(weight, weight, target, head)
    name = setting_name(*setting)
    model = train_from_scratch(record, train, study.recipe, seed, tracker=inner, regularizer=form,
                               description=f"train λ={weight:g} {name} seed {seed}")  # fmt: skip
    path = out / "runs" / f"{run_name(weight, target, head, seed)}.pt"
    meta = {"epoch": study.recipe.epochs, "step": study.recipe.epochs, "dataset": train.spec,
            "recipe": study.recipe.to_dict(), "seed": seed, "regularizer": None if form is None else asdict(form)}  # fmt: skip
    save_checkpoint(path, model.state_dict(), record, meta)
    device = torch.device("cpu")
    return {"lam": weight, "setting": name, "seed": seed, "checkpoint": str(path),
            "train": evaluate(model, "head", train, device), "test": evaluate(model, "head", test, device)}  # fmt: skip


def run_regularizer(
    out: Path | str,
    study: RegularizerStudy | None = None,
    *,
    resume: bool = False,
    tracker: Tracker | None = None,
    on_record: OnRecord | None = None,
) -> dict[str, Any]:
    """Run (or resume) the study in ``out``; returns the results document, also written to
    DIR/results.json (schema ``nc-audit-study-results/1``)."""
    study = study or RegularizerStudy()
    study.validate()
    tracker = tracker or SilentTracker()
    out = Path(out)
    opened = open_mlp_study(out, KIND, study.data, study.hidden, study.settings(), resume)
    train, test, record, records = opened.train, opened.test, opened.record, opened.records

    def work(setting: Setting, seed: int) -> Any:
        return lambda inner: _train_and_measure(study, record, (train, test), setting, seed, out, inner)

    runs = [
        Run(
            f"lam={s[0]:g},form={setting_name(*s)},seed={seed}",
            f"λ={s[0]:g} {setting_name(*s)} seed {seed}",
            work(s, seed),
        )
        for s in study.plan()
        for seed in study.seeds
    ]
    results = run_study(records, runs, tracker, on_record)
    summary = summarise(results, ["lam", "setting"], [(name, get) for name, _, get in COLUMNS])
    return write_results(records, record, train.num_classes, results, summary)
