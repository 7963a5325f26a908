"""Small hand-made documents of prune, the studies and the grokking demo, shaped like the ones they write
(nc-audit-pruning/1, nc-audit-study-results/1, the demo's trajectory.json), for the renderer tests."""

from __future__ import annotations

from typing import Any

from nc_audit.experiments.studies.summary import summarise


def _report(nc1: float | None, mir: float, hdr: float, nc4: float = 0.0) -> dict[str, Any]:
    return {"metrics": {"nc1": nc1, "nc4": nc4, "mir": mir, "hdr": hdr}}


def pruning_document(path: str = "runs/model.pt", data: str = "digits", finetune: int = 0) -> dict[str, Any]:
    """Sparsities 0 and 0.5, two records each (so mean ± std), and 0.9 once with no test accuracy."""
    records = [
        {"sparsity": 0.0, "kept": {"fraction": 1.0}, "accuracy": 1.0, "test_accuracy": 0.98,
         "report": _report(0.0022, 0.9517, 0.0038)},
        {"sparsity": 0.0, "kept": {"fraction": 1.0}, "accuracy": 1.0, "test_accuracy": 0.99,
         "report": _report(0.0024, 0.9519, 0.0040)},
        {"sparsity": 0.5, "kept": {"fraction": 0.5}, "accuracy": 0.9, "test_accuracy": 0.85,
         "report": _report(0.5, 0.94, -0.25, 0.125)},
        {"sparsity": 0.5, "kept": {"fraction": 0.5}, "accuracy": 0.8, "test_accuracy": 0.75,
         "report": _report(None, 0.93, -0.5, 0.25)},
        {"sparsity": 0.9, "kept": {"fraction": 0.1}, "accuracy": 0.5, "test_accuracy": None,
         "report": _report(1.5, 0.9, 0.2, 0.5)},
    ]  # fmt: skip
    settings = {"scope": "global", "include_head": bool(finetune), "finetune_epochs": finetune, "lr": 3e-4,
                "batch_size": 32, "split": "train"}  # fmt: skip
    return {"checkpoint": {"path": path, "sha256": "0" * 64}, "data": data, "settings": settings,
            "targets": {"mir": 0.952380952, "hdr": 0.0}, "records": records}  # fmt: skip


def _model() -> dict[str, Any]:
    return {"name": "mlp", "config": {"input_dim": 64, "hidden": [16, 16]}, "num_classes": 10}


def label_smoothing_document(data: str = "digits") -> dict[str, Any]:
    """ε 0 and 0.1, seeds 0–2 (ε 0: one undefined NC1)."""
    records = [
        {"epsilon": eps, "seed": seed, "test": {"accuracy": 0.9 + 0.01 * seed + eps},
         "train": {"accuracy": 1.0, "metrics": {"nc1": None if (eps, seed) == (0.0, 1) else 0.002 * (seed + 1),
                                                "mir": 0.95 + 0.0001 * seed, "hdr": 0.004 - eps / 100, "nc4": 0.0}}}
        for eps in (0.0, 0.1) for seed in range(3)
    ]  # fmt: skip
    columns = [("test_accuracy", lambda r: r["test"]["accuracy"]), ("nc1", lambda r: r["train"]["metrics"]["nc1"]),
               ("mir", lambda r: r["train"]["metrics"]["mir"]), ("hdr", lambda r: r["train"]["metrics"]["hdr"]),
               ("train_accuracy", lambda r: r["train"]["accuracy"]), ("nc4", lambda r: r["train"]["metrics"]["nc4"])]  # fmt: skip
    recipe = {
        "momentum": 0.9,
        "lr": 0.05,
        "epochs": 300,
        "weight_decay": 5e-3,
        "batch_size": 64,
        "drop_last": True,
    }
    return {"settings": {"data": data, "seeds": [0, 1, 2], "recipe": recipe}, "model": _model(),
            "targets": {"mir": 0.952380952, "hdr": 0.0}, "summary": summarise(records, ["epsilon"], columns)}  # fmt: skip


def semi_supervised_document(setting: str = "FixMatch λ=0.1") -> dict[str, Any]:
    """K = 4: the supervised baseline (no confident share) and one FixMatch setting, two seeds each."""
    records = [
        {"labels_per_class": 4, "setting": name, "seed": seed, "test": {"accuracy": 0.8 + 0.05 * seed},
         "stats": {"mask_rate": None if name == "supervised" else 0.8 + 0.01 * seed,
                   "pseudo_label_accuracy": None if name == "supervised" else 0.97},
         "train": {"metrics": {"nc1": 0.3, "mir": 0.93 + 0.01 * seed, "hdr": 0.05}}}
        for name in ("supervised", setting) for seed in range(2)
    ]  # fmt: skip
    columns = [("test_accuracy", lambda r: r["test"]["accuracy"]), ("mask_rate", lambda r: r["stats"]["mask_rate"]),
               ("pseudo_label_accuracy", lambda r: r["stats"]["pseudo_label_accuracy"]),
               ("nc1", lambda r: r["train"]["metrics"]["nc1"]), ("mir", lambda r: r["train"]["metrics"]["mir"]),
               ("hdr", lambda r: r["train"]["metrics"]["hdr"])]  # fmt: skip
    recipe = {"steps": 2000, "momentum": 0.9, "lr": 0.03, "weight_decay": 5e-4, "batch_size": 64,
              "unlabeled_ratio": 7, "threshold": 0.95}  # fmt: skip
    return {"settings": {"data": "digits", "seeds": [0, 1], "recipe": recipe}, "model": _model(),
            "targets": {"mir": 0.952380952, "hdr": 0.0},
            "summary": summarise(records, ["labels_per_class", "setting"], columns)}  # fmt: skip


def grokking_document(metric: str = "mir (train features)", test_step: int | None = 200) -> dict[str, Any]:
    """Four checkpoints; the train event at step 100, the test event at ``test_step`` (None: never)."""
    change = {"change": 0.0123456, "from_step": 0, "to_step": 300}
    test_change = None if test_step is None else {"change": float("nan"), "from_step": 100, "to_step": 300}
    changes = {
        metric: {"around_train_event": change, "around_test_event": test_change,
                 "larger_around": None if test_step is None else "test", "median_over_run": 0.004},
        "hdr (test features)": {"around_train_event": change, "around_test_event": test_change,
                                "larger_around": None if test_step is None else "train", "median_over_run": None},
    }  # fmt: skip
    events = {"threshold": 0.99, "window_checkpoints": 2, "train_accuracy_step": 100, "test_accuracy_step": test_step,
              "best_test_accuracy": {"accuracy": 0.512345, "step": 300}, "changes": changes}  # fmt: skip
    config = {"p": 23, "train_fraction": 0.4, "seed": 0, "steps": 300, "save_every": 100,
              "model": {"name": "modmlp", "embed_dim": 128, "hidden": 256}}  # fmt: skip
    series = {"train accuracy": [0.1, 1.0, 1.0, 1.0], "test accuracy": [0.05, 0.2, 0.995, 0.99]}
    return {"config": config, "events": events, "steps": [0, 100, 200, 300], "series": series,
            "seconds": {"train": 5.61, "measure": 1.94, "total": 7.55}}  # fmt: skip
