"""The pruning study over seeds: the sample model trained from scratch per seed, then magnitude-pruned.

Each seed s trains the sample trajectory's model (built-in ``mlp``, 3 hidden layers of 64 with BatchNorm)
with the sample's recipe (nc_audit.train.recipe), exactly the λ = 0 run of ``study regularizer`` and the
parent of ``study lmc``; the trained network is kept as DIR/runs/seed_S.pt, so a resumed study does not
train it again. Each sparsity then prunes a fresh copy of it as ``nc-audit prune`` does
(nc_audit.experiments.prune.prune_one: global magnitude ranking, the head dense, no fine-tuning by
default) into DIR/runs/seed_S/sparsity_X.pt and measures it on the train split (class means from train)
plus its accuracy on the test split. Resumable (nc_audit.experiments.studies.records), one run per
(seed, sparsity); the summary is mean ± sample std over seeds per sparsity.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.experiments.prune import (
    DEFAULT_SPARSITIES,
    PruneSettings,
    PruneSource,
    checkpoint_name,
    prune_one,
)
from nc_audit.experiments.prune_summary import COLUMNS as PRUNE_COLUMNS
from nc_audit.experiments.studies.records import OnRecord, Run, plain, run_study, write_results
from nc_audit.experiments.studies.setup import open_mlp_study
from nc_audit.experiments.studies.summary import summarise
from nc_audit.io.checkpoints.load import file_sha256
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.data.datasets import ArrayDataset
from nc_audit.models.spec import NO_MODEL
from nc_audit.train.recipe import Recipe, train_from_scratch

KIND = "prune-seeds"
#: Names and headers of ``nc-audit prune``'s columns that this study's page words otherwise.
_RENAMED = {"kept": ("kept", "weights kept"), "accuracy": ("train_accuracy", "train accuracy")}
#: Summary columns: (name, header, how to read it from a run's record). A run's record is a
#: ``nc-audit prune`` record, so the readers are prune_summary's.
COLUMNS = tuple((*_RENAMED.get(name, (name, header)), read) for name, header, read in PRUNE_COLUMNS)


@dataclass(frozen=True)
class PruneSeedsStudy:
    """What the study trains and prunes: seeds, the data, the MLP's widths, the recipe and the pruning."""

    seeds: tuple[int, ...] = (0, 1, 2)
    data: str = "digits"
    hidden: tuple[int, ...] = (64, 64, 64)
    recipe: Recipe = field(default_factory=Recipe)
    pruning: PruneSettings = field(default_factory=lambda: PruneSettings(sparsities=DEFAULT_SPARSITIES))

    @classmethod
    def quick(cls) -> PruneSeedsStudy:
        """A few seconds: one seed, a narrow model, 2 epochs, sparsities 0 and 0.8."""
        return cls(seeds=(0,), hidden=(16, 16), recipe=Recipe(epochs=2),
                   pruning=PruneSettings(sparsities=(0.0, 0.8)))  # fmt: skip

    def validate(self) -> None:
        if not self.seeds:
            raise InputError("prune study: need at least one seed")
        if any(seed < 0 for seed in self.seeds):
            raise InputError(f"seeds must be non-negative integers, got {list(self.seeds)}")
        self.pruning.validate()
        self.recipe.validate()

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = plain(asdict(self))
        return settings


def trained_path(out: Path, seed: int) -> Path:
    return out / "runs" / f"seed_{seed}.pt"


@dataclass(frozen=True)
class _Opened:
    """What every run of one invocation shares."""

    study: PruneSeedsStudy
    record: dict[str, Any]
    train: ArrayDataset
    out: Path
    cache: Path
    known: dict[int, str]


def _trained(opened: _Opened, seed: int, tracker: Tracker) -> Path:
    """DIR/runs/seed_S.pt: trained now unless an earlier invocation of this study left it."""
    path = trained_path(opened.out, seed)
    if path.is_file():
        return path
    study = opened.study
    model = train_from_scratch(opened.record, opened.train, study.recipe, seed, tracker=tracker,
                               description=f"train seed {seed}")  # fmt: skip
    meta = {"epoch": study.recipe.epochs, "step": study.recipe.epochs, "dataset": opened.train.spec,
            "recipe": study.recipe.to_dict(), "seed": seed}  # fmt: skip
    return save_checkpoint(path, model.state_dict(), opened.record, meta)


def _prune_seed(opened: _Opened, seed: int, sparsity: float, tracker: Tracker) -> dict[str, Any]:
    checkpoint = _trained(opened, seed, tracker)
    sha = _check_network(checkpoint, seed, opened.known)
    folder = opened.out / "runs" / f"seed_{seed}"
    folder.mkdir(exist_ok=True)
    source = PruneSource(checkpoint, opened.study.data, NO_MODEL, folder, opened.cache)
    record = prune_one(source, replace(opened.study.pruning, seed=seed), sparsity, tracker)
    return {"seed": seed, **record, "trained": sha, "load_average": os.getloadavg()[0]}


def _measured_networks(records: dict[str, dict[str, Any]]) -> dict[int, str]:
    """Seed → the SHA-256 of the network its records were measured on; InputError when two records of
    one seed name two networks."""
    known: dict[int, str] = {}
    for record in records.values():
        seed, sha = int(record["seed"]), str(record["trained"])
        if known.setdefault(seed, sha) != sha:
            raise InputError(
                f"--resume: the records of seed {seed} name two different networks; use another --out"
            )
    return known


def _check_network(path: Path, seed: int, known: dict[int, str]) -> str:
    """The SHA-256 of ``path``; InputError when the records of ``seed`` were measured on another network
    (a replaced file, or one trained again elsewhere after it was deleted): never mix two networks."""
    sha = file_sha256(path)
    if seed in known and known[seed] != sha:
        raise InputError(
            f"--resume: {path} is not the network the records of seed {seed} were measured on (its SHA-256 "
            "differs); use another --out"
        )
    return sha


def run_prune_seeds(
    out: Path | str,
    study: PruneSeedsStudy | None = None,
    *,
    resume: bool = False,
    tracker: Tracker | None = None,
    on_record: OnRecord | None = None,
) -> dict[str, Any]:
    """Run (or resume) the study in ``out``; returns the results document, also written to
    DIR/results.json (schema ``nc-audit-study-results/1``)."""
    study = study or PruneSeedsStudy()
    study.validate()
    tracker = tracker or SilentTracker()
    out = Path(out)
    opened = open_mlp_study(out, KIND, study.data, study.hidden, study.settings(), resume)
    known = _measured_networks(opened.records.records)
    for seed in known:
        if trained_path(out, seed).is_file():
            _check_network(trained_path(out, seed), seed, known)
    with tempfile.TemporaryDirectory(prefix=".nc-audit-cache-", dir=out) as cache:
        shared = _Opened(study, opened.record, opened.train, out, Path(cache), known)

        def work(seed: int, sparsity: float) -> Any:
            return lambda inner: _prune_seed(shared, seed, sparsity, inner)

        runs = [
            Run(f"seed={seed},sparsity={s:g}", f"seed {seed} sparsity {s:g}", work(seed, s))
            for seed in study.seeds
            for s in study.pruning.sparsities
        ]
        results = run_study(opened.records, runs, tracker, on_record)
    ordered = sorted(results, key=lambda r: study.pruning.sparsities.index(r["sparsity"]))
    summary = summarise(ordered, ["sparsity"], [(name, get) for name, _, get in COLUMNS])
    return write_results(opened.records, opened.record, opened.train.num_classes, results, summary)


def planned_files(out: Path, study: PruneSeedsStudy) -> list[Path]:
    """Every network the study keeps in ``out`` (checked as outputs before anything is written)."""
    files = []
    for seed in study.seeds:
        files.append(trained_path(out, seed))
        files += [out / "runs" / f"seed_{seed}" / checkpoint_name(s) for s in study.pruning.sparsities]
    return files
