"""The pairs of the linear-mode-connectivity study (nc_audit.experiments.studies.lmc): the parent of each
seed trained to each spawn epoch, its two children, the independent pair, and the path between a pair.

Every network the study trains is kept in DIR/runs (written atomically) and read back instead of trained
again: a parent's run state at each spawn epoch (the next spawn epoch trains on from the newest one), and
each pair's two final networks. The path is ``interpolate``'s (nc_audit.experiments.interpolate), run on the
two saved checkpoints like ``nc-audit interpolate A B --data DATA --split SPLIT --device cpu``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nc_audit.core.errors import InputError
from nc_audit.core.progress import Tracker
from nc_audit.experiments.interpolate import run_interpolation
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.data.datasets import ArrayDataset
from nc_audit.models.spec import ModelSpec
from nc_audit.train.recipe import RunState, start_run, train_epochs, train_from_scratch
from nc_audit.train.spawn import load_run_state, read_payload, save_run_state, spawn

if TYPE_CHECKING:
    from nc_audit.experiments.studies.lmc import LmcStudy

#: Seeds below this bound; the children's order seeds and the independent partner's seed lie above it.
SEED_BOUND = 10_000
#: Metrics kept per α (each split's features against its own class means, as ``interpolate`` measures).
CURVE_METRICS = ("nc1", "mir", "hdr")
SPLITS = ("train", "test")
INDEPENDENT = "independent"


def setting_name(spawn_epoch: int | None) -> str:
    """``0``, ``5``, … for children spawned at epoch k; ``independent`` for the control."""
    return INDEPENDENT if spawn_epoch is None else str(spawn_epoch)


def child_order_seeds(seed: int) -> tuple[int, int]:
    """The batch-order seeds of the two children of seed ``seed``'s parent (never a parent's seed)."""
    return SEED_BOUND + 2 * seed, SEED_BOUND + 2 * seed + 1


def independent_seeds(seed: int) -> tuple[int, int]:
    """The init (and batch-order) seeds of the independent pair of seed ``seed``: the parent's full run
    and a run seeded 20000 + ``seed``."""
    return seed, 2 * SEED_BOUND + seed


def parent_path(runs: Path, seed: int, epoch: int) -> Path:
    """DIR/runs/parent-seed_S-epoch_K.pt: seed S's run state at epoch K."""
    return runs / f"parent-seed_{seed}-epoch_{epoch}.pt"


def child_path(runs: Path, seed: int, spawn_epoch: int, order_seed: int) -> Path:
    """DIR/runs/child-seed_S-k_K-order_O.pt: a child's final weights."""
    return runs / f"child-seed_{seed}-k_{spawn_epoch}-order_{order_seed}.pt"


def independent_path(runs: Path, seed: int, init_seed: int) -> Path:
    """DIR/runs/independent-seed_S-init_I.pt: a run of the independent pair, its final weights."""
    return runs / f"independent-seed_{seed}-init_{init_seed}.pt"


def planned_files(out: Path, study: LmcStudy) -> list[Path]:
    """Every file the study keeps in DIR/runs (parents, children, independent runs)."""
    runs = out / "runs"
    files = []
    for seed in study.seeds:
        files += [runs / f"parent-seed_{seed}-epoch_{k}.pt" for k in study.spawn_epochs]
        files += [
            runs / f"child-seed_{seed}-k_{k}-order_{o}.pt"
            for k in study.spawn_epochs
            for o in child_order_seeds(seed)
        ]
        if study.independent:
            files += [runs / f"independent-seed_{seed}-init_{i}.pt" for i in independent_seeds(seed)]
    return files


def check_no_stale_files(out: Path, study: LmcStudy) -> None:
    """InputError when a new study's DIR/runs already holds a file it would write: a resumed study reads
    its own networks back, a new one never takes (or replaces) files it did not write."""
    for path in planned_files(out, study):
        if path.exists() or path.is_symlink():
            raise InputError(
                f"--out {out}: {path} already exists, and no study to resume holds it; remove it or choose "
                "another --out"
            )


class PairTrainer:
    """Trains (or reads back) the networks of one study and measures the path of each pair."""

    def __init__(self, out: Path, study: LmcStudy, train: ArrayDataset, record: dict[str, Any]) -> None:
        self.runs = out / "runs"
        self.study = study
        self.train = train
        self.record = record
        self._parents: dict[int, RunState] = {}  # per seed, the newest parent state of this process

    def _meta(self, seed: int, **role: Any) -> dict[str, Any]:
        """What every file of the study records about itself: its data, recipe, seed and role in the study
        (checked by :meth:`_check_kept` before the file is used again)."""
        recipe = self.study.recipe
        return {"epoch": recipe.epochs, "step": recipe.epochs, "dataset": self.train.spec,
                "recipe": recipe.to_dict(), "seed": seed, "lmc": {"seed": seed, **role}}  # fmt: skip

    def _check_kept(self, path: Path, meta: dict[str, Any]) -> None:
        """InputError unless ``path`` is the file this study wrote there (same model, data, recipe and
        role): a resumed study never measures a network it did not train."""
        payload = read_payload(path, "network of this study")
        for key in ("dataset", "recipe", "lmc"):
            if payload.get(key) != meta[key]:
                raise InputError(
                    f"{path}: not written by this study (its {key} differs: {str(payload.get(key))[:80]}); "
                    "delete it to train again"
                )
        if payload.get("architecture") != self.record:
            raise InputError(f"{path}: not written by this study (another model); delete it to train again")

    def parent(self, seed: int, epoch: int, tracker: Tracker) -> RunState:
        """Seed ``seed``'s parent at ``epoch``: read from its file, else trained on from the newest state
        at or before ``epoch`` (in memory, or a file of an earlier spawn epoch, or the initialisation)."""
        path = parent_path(self.runs, seed, epoch)
        recipe = self.study.recipe
        meta = self._meta(seed, role="parent", epoch=epoch)
        if path.exists():
            self._check_kept(path, meta)
            state = load_run_state(path, self.record, recipe)
        else:
            remembered = self._parents.get(seed)
            if remembered is not None and remembered.epoch <= epoch:
                state = remembered
            else:
                earlier = [
                    k
                    for k in self.study.spawn_epochs
                    if k < epoch and parent_path(self.runs, seed, k).exists()
                ]
                state = (
                    self._earlier_parent(seed, max(earlier))
                    if earlier
                    else start_run(self.record, recipe, seed)
                )
            train_epochs(state, self.train, recipe, epoch, tracker=tracker,
                         description=f"parent seed {seed} to epoch {epoch}")  # fmt: skip
            save_run_state(path, state, self.record, {**meta, "step": epoch})  # epoch: the state's own
        self._parents[seed] = state
        return state

    def _earlier_parent(self, seed: int, epoch: int) -> RunState:
        path = parent_path(self.runs, seed, epoch)
        self._check_kept(path, self._meta(seed, role="parent", epoch=epoch))
        return load_run_state(path, self.record, self.study.recipe)

    def children(self, seed: int, spawn_epoch: int, tracker: Tracker) -> list[Path]:
        """The two children of seed ``seed``'s parent at ``spawn_epoch``, trained to the end (or read back)."""
        orders = child_order_seeds(seed)
        paths = [child_path(self.runs, seed, spawn_epoch, order) for order in orders]
        metas = [
            self._meta(seed, role="child", spawn_epoch=spawn_epoch, order_seed=order) for order in orders
        ]
        missing = []
        for path, meta in zip(paths, metas, strict=True):
            if path.exists():
                self._check_kept(path, meta)
            else:
                missing.append((path, meta))
        if missing:
            parent, recipe = self.parent(seed, spawn_epoch, tracker), self.study.recipe
            for path, meta in missing:
                child = spawn(parent, recipe, meta["lmc"]["order_seed"])
                model = train_epochs(child, self.train, recipe, recipe.epochs, tracker=tracker,
                                     description=f"child {path.stem}")  # fmt: skip
                save_checkpoint(path, model.state_dict(), self.record, meta)
        return paths

    def independent(self, seed: int, tracker: Tracker) -> list[Path]:
        """Two full runs from different inits and batch orders (or read back)."""
        paths = []
        for init in independent_seeds(seed):
            path = independent_path(self.runs, seed, init)
            meta = self._meta(seed, role="independent", init_seed=init)
            if path.exists():
                self._check_kept(path, meta)
            else:
                model = train_from_scratch(self.record, self.train, self.study.recipe, init, tracker=tracker,
                                           description=f"independent init {init} seed {seed}")  # fmt: skip
                save_checkpoint(path, model.state_dict(), self.record, meta)
            paths.append(path)
        return paths

    def path_curve(self, a: Path, b: Path, split: str, tracker: Tracker) -> dict[str, Any]:
        """``interpolate``'s records between ``a`` and ``b`` on ``split``, reduced to what the study reads."""
        line = run_interpolation(a, b, self.study.data, steps=self.study.steps, split=split,
                                 model=ModelSpec(device="cpu"), tracker=tracker)  # fmt: skip
        points = [
            {"alpha": r["alpha"], "accuracy": r["accuracy"], "loss": r["loss"],
             "metrics": {key: r["metrics"].get(key) for key in CURVE_METRICS}}
            for r in line.records
        ]  # fmt: skip
        return {"curve": points}

    def measure(self, seed: int, spawn_epoch: int | None, tracker: Tracker) -> dict[str, Any]:
        """The record of one pair: who its two networks are and the path between them on each split."""
        if spawn_epoch is None:
            paths = self.independent(seed, tracker)
            who: dict[str, Any] = {"init_seeds": list(independent_seeds(seed))}
        else:
            paths = self.children(seed, spawn_epoch, tracker)
            who = {"order_seeds": list(child_order_seeds(seed))}
        return {
            "seed": seed,
            "setting": setting_name(spawn_epoch),
            "spawn_epoch": spawn_epoch,
            **who,
            "checkpoints": [str(path) for path in paths],
            **{split: self.path_curve(paths[0], paths[1], split, tracker) for split in SPLITS},
        }
