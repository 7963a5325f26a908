"""Label smoothing: the sample model trained from scratch with smoothed targets, ε × seeds.

Each run trains the sample trajectory's model (built-in ``mlp``, 3 hidden layers of 64 with BatchNorm)
with the sample's recipe (nc_audit.train.recipe: SGD momentum 0.9, lr 0.05 cosine, weight decay 5e-3,
batch 64, last partial batch dropped, 300 epochs) and cross-entropy with label smoothing ε, then
measures it: accuracy, loss and every class-level metric on the train split (the sample trajectory's
convention) and on the test split (its own class means). The final weights are kept as
DIR/runs/eps_E-seed_S.pt (measurable with ``nc-audit measure --data``). Runs are resumable
(nc_audit.experiments.studies.records). The summary gives mean ± std over seeds per ε.
"""

from __future__ import annotations

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
    plain,
    run_study,
    write_results,
)
from nc_audit.experiments.studies.setup import open_mlp_study
from nc_audit.experiments.studies.summary import summarise
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.train.ranges import LABEL_SMOOTHING
from nc_audit.train.recipe import Recipe, train_from_scratch

KIND = "label-smoothing"
#: Summary columns: (name, header, how to read it from a run's record).
COLUMNS = (
    ("test_accuracy", "test accuracy", lambda r: r["test"]["accuracy"]),
    ("nc1", "NC1", lambda r: r["train"]["metrics"]["nc1"]),
    ("mir", "MIR", lambda r: r["train"]["metrics"]["mir"]),
    ("hdr", "HDR", lambda r: r["train"]["metrics"]["hdr"]),
    ("train_accuracy", "train accuracy", lambda r: r["train"]["accuracy"]),
    ("nc4", "NC4", lambda r: r["train"]["metrics"]["nc4"]),
)


@dataclass(frozen=True)
class LabelSmoothingStudy:
    """What the study trains: ε values, seeds, the data, the MLP's hidden widths and the recipe."""

    epsilons: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)
    seeds: tuple[int, ...] = (0, 1, 2)
    data: str = "digits"
    hidden: tuple[int, ...] = (64, 64, 64)
    recipe: Recipe = field(default_factory=Recipe)

    @classmethod
    def quick(cls) -> LabelSmoothingStudy:
        """A few seconds: two ε, one seed, a narrow model, 3 epochs (for tests and a first look)."""
        return cls(epsilons=(0.0, 0.1), seeds=(0,), hidden=(16, 16), recipe=Recipe(epochs=3))

    def validate(self) -> None:
        if not self.epsilons or not self.seeds:
            raise InputError("label-smoothing study: need at least one ε and one seed")
        for eps in self.epsilons:
            LABEL_SMOOTHING.check(eps, "label smoothing ε")
        if any(seed < 0 for seed in self.seeds):
            raise InputError(f"seeds must be non-negative integers, got {list(self.seeds)}")
        replace(self.recipe, label_smoothing=max(self.epsilons)).validate()

    def settings(self) -> dict[str, Any]:
        document: dict[str, Any] = plain(asdict(self))
        return document


def run_name(epsilon: float, seed: int) -> str:
    return f"eps_{epsilon:g}-seed_{seed}"


def run_label_smoothing(
    out: Path | str,
    study: LabelSmoothingStudy | None = None,
    *,
    resume: bool = False,
    tracker: Tracker | None = None,
    on_record: OnRecord | None = None,
) -> dict[str, Any]:
    """Run (or resume) the study in ``out``; returns the results document, also written to
    DIR/results.json (schema ``nc-audit-study-results/1``)."""
    study = study or LabelSmoothingStudy()
    study.validate()
    tracker = tracker or SilentTracker()
    out = Path(out)
    opened = open_mlp_study(out, KIND, study.data, study.hidden, study.settings(), resume)
    train, test, record, records = opened.train, opened.test, opened.record, opened.records

    def work(epsilon: float, seed: int) -> Any:
        def one_run(inner: Tracker) -> dict[str, Any]:
            recipe = replace(study.recipe, label_smoothing=epsilon)
            label = f"train ε={epsilon:g} seed {seed}"
            model = train_from_scratch(record, train, recipe, seed, tracker=inner, description=label)
            path = out / "runs" / f"{run_name(epsilon, seed)}.pt"
            meta = {"epoch": recipe.epochs, "step": recipe.epochs, "dataset": train.spec,
                    "recipe": recipe.to_dict(), "seed": seed}  # fmt: skip
            save_checkpoint(path, model.state_dict(), record, meta)
            device = torch.device("cpu")
            return {"epsilon": epsilon, "seed": seed, "checkpoint": str(path),
                    "train": evaluate(model, "head", train, device),
                    "test": evaluate(model, "head", test, device)}  # fmt: skip

        return one_run

    runs = [
        Run(run_name(eps, seed), f"ε={eps:g} seed {seed}", work(eps, seed))
        for eps in study.epsilons
        for seed in study.seeds
    ]
    results = run_study(records, runs, tracker, on_record)
    summary = summarise(results, ["epsilon"], [(name, get) for name, _, get in COLUMNS])
    return write_results(records, record, train.num_classes, results, summary)
