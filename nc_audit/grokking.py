"""The grokking demo: train modmlp on a+b mod p, checkpoint it, then let nc-audit track the checkpoints.

Training (Power et al. 2022 setting): full batch, AdamW (lr 1e-3, weight decay 1.0, betas (0.9, 0.98)),
a self-describing checkpoint DIR/step_XXXXX.pt every ``save_every`` steps (and at step 0 and the last
step), with the training loop's train/test accuracy and loss in each checkpoint's meta.

Measurement: ``measure_trajectory`` on the train split and on the test split (Papyan's protocol: the
test records take the class means from train, so their class-level metrics are the train ones and
only accuracy and NC4 are held-out numbers). The test records also carry, under
``details.own_class_means``, every class-level metric computed with the TEST features' own class
means — the held-out MIR/HDR the plot shows. Events and statistics come from the measured records:

- event step: the first checkpoint whose measured accuracy is ≥ 0.99 (train, resp. test);
- window change of a metric m around an event at checkpoint i: |m(s_{i+k}) − m(s_{i−k})|, k = 2
  checkpoints either side (clipped at the ends), compared between the two events.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.functional import cross_entropy

from nc_audit import __version__
from nc_audit.errors import InputError
from nc_audit.io import atomic_write_bytes, atomic_write_text
from nc_audit.progress import SilentTracker, Tracker
from nc_audit.report.model import Report, finite_or_none, trajectory_dict
from nc_audit.sources.datasets import ArrayDataset, load_dataset
from nc_audit.sources.models import architecture_record, build_model
from nc_audit.sources.save import save_checkpoint

GROKKING_SCHEMA = "nc-audit-grokking/1"
#: modmlp width, chosen by measurement so that p = 97 at a 40% split groks within 4000 steps.
MODEL_CONFIG = {"embed_dim": 128, "hidden": 256}
OPTIMIZER: dict[str, Any] = {"name": "AdamW", "lr": 1e-3, "weight_decay": 1.0, "betas": (0.9, 0.98)}
THRESHOLD = 0.99
WINDOW = 2  # checkpoints either side of an event
TRACKED = ("mir", "hdr")


@dataclass(frozen=True)
class GrokkingResult:
    """Paths written, the measured events and window changes, and how long each phase took."""

    out: Path
    checkpoints: list[Path]
    trajectory_path: Path
    plot_path: Path
    summary_path: Path
    document: dict[str, Any]

    @property
    def seconds(self) -> dict[str, float]:
        return self.document["seconds"]

    @property
    def events(self) -> dict[str, Any]:
        return self.document["events"]


def save_steps(steps: int, save_every: int) -> list[int]:
    """0, save_every, 2·save_every, … and the last step."""
    return sorted({*range(0, steps + 1, save_every), steps})


def _evaluate(model: torch.nn.Module, splits: dict[str, ArrayDataset]) -> dict[str, float]:
    """The training loop's own accuracy and mean cross-entropy on each split (float32 logits)."""
    row = {}
    with torch.inference_mode():
        for name, split in splits.items():
            logits = model(split.inputs)  # (N, p)
            row[f"{name}_accuracy"] = float((logits.argmax(1) == split.labels).double().mean())
            row[f"{name}_loss"] = float(cross_entropy(logits, split.labels))
    return row


def train(
    out: Path, spec: str, p: int, steps: int, save_every: int, seed: int, tracker: Tracker
) -> tuple[list[Path], list[dict[str, Any]]]:
    """Full-batch AdamW on the train split; checkpoints and the loop's own accuracy/loss per save."""
    splits = {name: load_dataset(spec, name) for name in ("train", "test")}
    torch.manual_seed(seed)
    record = architecture_record("modmlp", {"p": p, **MODEL_CONFIG}, p)
    model = build_model(record)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=OPTIMIZER["lr"],
        weight_decay=OPTIMIZER["weight_decay"],
        betas=OPTIMIZER["betas"],
    )
    wanted = set(save_steps(steps, save_every))
    paths, history = [], []
    with tracker.stage(f"train modmlp on {spec}", steps) as advance:
        for step in range(steps + 1):
            if step in wanted:
                history.append({"step": step, **_evaluate(model, splits)})
                meta = {"step": step, "dataset": spec, "metrics": history[-1]}
                paths.append(save_checkpoint(out / f"step_{step:05d}.pt", model.state_dict(), record, meta))
            if step == steps:
                break
            loss = cross_entropy(model(splits["train"].inputs), splits["train"].labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            advance(1)
    return paths, history


def measure_splits(paths: list[Path], spec: str, tracker: Tracker) -> tuple[list[Report], list[Report]]:
    """Train and test reports of every checkpoint via measure_trajectory (features in a temporary cache)."""
    from nc_audit.trajectory import measure_trajectory

    with tempfile.TemporaryDirectory(prefix="nc-audit-grokking-") as cache:
        train_reports = measure_trajectory(paths, data=spec, split="train", cache_dir=Path(cache), device="cpu", tracker=tracker)  # fmt: skip
        test_reports = measure_trajectory(paths, data=spec, split="test", cache_dir=Path(cache), device="cpu", tracker=tracker)  # fmt: skip
        with tracker.stage("test class means", len(test_reports)) as advance:
            for report in test_reports:
                report.details["own_class_means"] = own_class_means(
                    Path(report.details["feature_cache"]["path"])
                )
                advance(1)
    for report in (*train_reports, *test_reports):  # the cache is gone: do not point into it
        report.features["path"] = None
        report.details.pop("feature_cache", None)
    return train_reports, test_reports


def own_class_means(dump: Path) -> dict[str, float | None]:
    """Every class-level metric of the dump's test split with the test features' own class means."""
    from nc_audit.audit import metrics_from_arrays
    from nc_audit.sources.dumps import iter_chunks, read_head, resolve_split

    chunks = list(iter_chunks(resolve_split(dump, "test")))
    H = torch.cat([features for features, _ in chunks])  # (N_test, d)
    y = torch.cat([labels for _, labels in chunks])  # (N_test,)
    head = read_head(dump)
    if head is None:
        raise InputError(f"{dump}: the feature cache holds no head")
    metrics, _ = metrics_from_arrays(H, y, head)
    return {key: finite_or_none(value) for key, value in metrics.items()}


def first_step(steps: list[int], values: list[float | None], threshold: float = THRESHOLD) -> int | None:
    """The first step whose value is ≥ threshold, or None."""
    return next((s for s, v in zip(steps, values, strict=True) if v is not None and v >= threshold), None)


def window_change(steps: list[int], values: list[float | None], event: int | None) -> dict[str, Any] | None:
    """|m(s_{i+k}) − m(s_{i−k})| around the event at checkpoint i (k = WINDOW, clipped), with the window."""
    if event is None:
        return None
    i = steps.index(event)
    lo, hi = max(i - WINDOW, 0), min(i + WINDOW, len(steps) - 1)
    if values[lo] is None or values[hi] is None:
        return {"from_step": steps[lo], "to_step": steps[hi], "change": None}
    return {"from_step": steps[lo], "to_step": steps[hi], "change": abs(values[hi] - values[lo])}


def series(train_reports: list[Report], test_reports: list[Report]) -> dict[str, list[Any]]:
    """Per-checkpoint series from the measured reports (accuracy from the classifier's decisions)."""
    data: dict[str, list[Any]] = {
        "train accuracy": [r.details["accuracy"] for r in train_reports],
        "test accuracy": [r.details["accuracy"] for r in test_reports],
    }
    for key in TRACKED:
        data[f"{key} (train features)"] = [finite_or_none(r.metrics.get(key)) for r in train_reports]
        data[f"{key} (test features)"] = [r.details["own_class_means"].get(key) for r in test_reports]
    return data


def events(steps: list[int], values: dict[str, list[Any]]) -> dict[str, Any]:
    """Event steps and the window change of every tracked series around each event."""
    train_event = first_step(steps, values["train accuracy"])
    test_event = first_step(steps, values["test accuracy"])
    changes = {}
    for name, column in values.items():
        if "accuracy" in name:
            continue
        around_train = window_change(steps, column, train_event)
        around_test = window_change(steps, column, test_event)
        larger = None
        if around_train and around_test and None not in (around_train["change"], around_test["change"]):
            larger = "test" if around_test["change"] > around_train["change"] else "train"
        typical = [window_change(steps, column, step)["change"] for step in steps]
        known = sorted(change for change in typical if change is not None)
        changes[name] = {
            "around_train_event": around_train,
            "around_test_event": around_test,
            "larger_around": larger,
            "median_over_run": known[len(known) // 2] if known else None,
        }
    return {"threshold": THRESHOLD, "window_checkpoints": WINDOW, "train_accuracy_step": train_event,
            "test_accuracy_step": test_event, "changes": changes}  # fmt: skip


def run_grokking(
    out: Path | str,
    *,
    p: int = 97,
    train_fraction: float = 0.4,
    steps: int = 4000,
    save_every: int = 100,
    seed: int = 0,
    tracker: Tracker | None = None,
) -> GrokkingResult:
    """Train, checkpoint, measure; write DIR/trajectory.json, DIR/grokking.png and DIR/SUMMARY.md."""
    if steps < 1 or save_every < 1:
        raise InputError(f"--steps {steps} and --save-every {save_every} must be positive integers")
    tracker = tracker or SilentTracker()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{out}: cannot create the output folder ({error.strerror})") from None
    spec = load_dataset(f"modadd:p={p},train_fraction={train_fraction},seed={seed}", "train").spec
    started = time.perf_counter()
    paths, history = train(out, spec, p, steps, save_every, seed, tracker)
    trained = time.perf_counter()
    train_reports, test_reports = measure_splits(paths, spec, tracker)
    measured = time.perf_counter()
    steps_saved = [int(r.step) for r in train_reports]
    values = series(train_reports, test_reports)
    document = {
        "schema": GROKKING_SCHEMA,
        "nc_audit_version": __version__,
        "config": {
            "dataset": spec,
            "p": p,
            "train_fraction": train_fraction,
            "steps": steps,
            "save_every": save_every,
            "seed": seed,
            "model": {"name": "modmlp", **MODEL_CONFIG},
            "optimizer": OPTIMIZER,
            "batch": "full",
        },
        "history": history,
        "steps": steps_saved,
        "series": values,
        "events": events(steps_saved, values),
        "train": trajectory_dict(train_reports),
        "test": trajectory_dict(test_reports),
    }
    plot_grokking(document, out / "grokking.png")
    done = time.perf_counter()
    document["seconds"] = {"train": trained - started, "measure": measured - trained, "total": done - started}
    atomic_write_text(out / "trajectory.json", json.dumps(document, indent=1, allow_nan=False) + "\n")
    atomic_write_text(out / "SUMMARY.md", summary_markdown(document))
    return GrokkingResult(
        out, paths, out / "trajectory.json", out / "grokking.png", out / "SUMMARY.md", document
    )


def _draw(ax: Any, x: list[int], lines: dict[str, list[Any]], target: float | None, marks: list[int]) -> None:
    for name, values in lines.items():
        ax.plot(x, [float("nan") if v is None else v for v in values], marker="o", markersize=2, label=name)
    if target is not None:
        ax.axhline(target, linestyle="--", color="grey", linewidth=1, label="NC target")
    for step in marks:
        ax.axvline(step, linestyle=":", color="black", linewidth=1)
    ax.set_xscale("symlog", linthresh=max(1, x[1] if len(x) > 1 else 1))
    ax.set_xlabel("step (symlog)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def plot_grokking(document: dict[str, Any], path: Path) -> None:
    """2×2 PNG against step: accuracy, loss, MIR, HDR (train and test; NC targets dashed, events dotted)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x, values, history = document["steps"], document["series"], document["history"]
    targets = document["train"]["records"][0]["targets"]
    marks = [
        s for s in (document["events"]["train_accuracy_step"], document["events"]["test_accuracy_step"]) if s
    ]
    figure = Figure(figsize=(11, 7.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 2).ravel()
    _draw(axes[0], x, {k: values[k] for k in ("train accuracy", "test accuracy")}, None, marks)
    _draw(axes[1], [h["step"] for h in history], {f"{s} loss": [h[f"{s}_loss"] for h in history] for s in ("train", "test")}, None, marks)  # fmt: skip
    axes[1].set_yscale("log")
    for ax, key in zip(axes[2:], TRACKED, strict=True):
        _draw(ax, x, {k: v for k, v in values.items() if k.startswith(key + " ")}, targets.get(key), marks)
    for ax, title in zip(
        axes, ("accuracy (measured)", "cross-entropy (training loop)", "MIR", "HDR"), strict=True
    ):
        ax.set_title(title, fontsize="medium")
    config = document["config"]
    figure.suptitle(
        f"grokking: a+b mod {config['p']}, train fraction {config['train_fraction']}; dotted: accuracy ≥ {THRESHOLD} (train, test)"
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _change_cell(change: dict[str, Any] | None) -> str:
    if change is None:
        return "n/a (no event)"
    return f"{_num(change['change'])} (steps {change['from_step']}–{change['to_step']})"


def summary_markdown(document: dict[str, Any]) -> str:
    """SUMMARY.md: setup, the two event steps, the window changes and their comparison, timing."""
    config, ev, values = document["config"], document["events"], document["series"]
    best_test = max(v for v in values["test accuracy"] if v is not None)
    best_step = document["steps"][values["test accuracy"].index(best_test)]

    def event_line(name: str, step: int | None) -> str:
        if step is None:
            extra = f" (best {best_test:.4f} at step {best_step})" if name == "test" else ""
            return f"- {name} accuracy: never reached ≥ {THRESHOLD} within {config['steps']} steps{extra}"
        accuracy = values[f"{name} accuracy"][document["steps"].index(step)]
        return f"- {name} accuracy first ≥ {THRESHOLD} at step **{step}** (measured {accuracy:.4f})"

    lines = [
        f"# Grokking on a+b mod {config['p']} (train fraction {config['train_fraction']}, seed {config['seed']})",
        "",
        f"modmlp (embed_dim {config['model']['embed_dim']}, hidden {config['model']['hidden']}); AdamW lr 1e-3, "
        f"weight decay 1.0, betas (0.9, 0.98), full batch, {config['steps']} steps, a checkpoint every "
        f"{config['save_every']} steps ({len(document['steps'])} checkpoints), measured with nc-audit's "
        "measure_trajectory on the train and test splits.",
        "",
        event_line("train", ev["train_accuracy_step"]),
        event_line("test", ev["test_accuracy_step"]),
        "",
        f"Statistic: |m(s_{{i+{WINDOW}}}) − m(s_{{i−{WINDOW}}})|, the change of a metric over the {WINDOW} checkpoints "
        "either side of the event's checkpoint i. MIR/HDR (train features): K_W vs the train class means; "
        "(test features): K_W vs the test features' own class means.",
        "",
        "| metric | change around train event | change around test event | larger around | median change over the run |",
        "|---|---|---|---|---|",
    ]
    for name, change in ev["changes"].items():
        larger = {"test": "test-accuracy jump", "train": "train-accuracy jump", None: "n/a"}[
            change["larger_around"]
        ]
        lines.append(
            f"| {name} | {_change_cell(change['around_train_event'])} | {_change_cell(change['around_test_event'])} | {larger} | {_num(change['median_over_run'])} |"
        )
    answers = [
        f"{name} changed more around the {change['larger_around']}-accuracy jump"
        for name, change in ev["changes"].items()
        if change["larger_around"]
    ]
    lines += [
        "",
        "Answer: "
        + (
            "; ".join(answers) + "."
            if answers
            else "no comparison: test accuracy never reached the threshold."
        ),
    ]
    seconds = document.get("seconds", {})
    if seconds:
        lines += [
            "",
            f"Time: training {seconds['train']:.1f} s, measurement {seconds['measure']:.1f} s, total {seconds['total']:.1f} s.",
        ]
    return "\n".join(lines) + "\n"
