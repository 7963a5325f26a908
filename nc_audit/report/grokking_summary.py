"""`nc-audit demo grokking`'s SUMMARY.md and console lines, as typed pages (:mod:`nc_audit.report.tables`)
from the demo's trajectory document: setup, the two event steps, the window changes and their comparison,
timing. The statistics themselves are the document's (nc_audit.experiments.grokking)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nc_audit.report.tables import Block, Bullets, Column, Line, Markup, Number, Page, Paragraph, Table

Document = Mapping[str, Any]

#: Which jump a metric changed more around, as the table says it.
_LARGER = {"test": "test-accuracy jump", "train": "train-accuracy jump", None: "n/a"}
_COLUMNS = tuple(
    Column(header, "default")
    for header in ("metric", "change around train event", "change around test event", "larger around",
                   "median change over the run")
)  # fmt: skip


def _change(change: Mapping[str, Any] | None) -> Line:
    """A window change with the steps it spans."""
    if change is None:
        return ("n/a (no event)",)
    return (Number(change["change"], undefined="n/a"), " (steps ", Number(change["from_step"], None), "–",
            Number(change["to_step"], None), ")")  # fmt: skip


def _model(model: Mapping[str, Any]) -> str:
    """``transformer (d_model 64, heads 4, d_mlp 256)`` from the document's model entry."""
    settings = ", ".join(f"{key} {value}" for key, value in model.items() if key != "name")
    return f"{model.get('name', 'modmlp')} ({settings})"


def _event(document: Document, name: str, step: int | None) -> Line:
    config, events = document["config"], document["events"]
    threshold = Number(events["threshold"], None)
    if step is None:
        best = events["best_test_accuracy"]
        extra: Line = ()
        if name == "test":
            extra = (" (best ", Number(best["accuracy"]), " at step ", Number(best["step"], None), ")")
        return (f"{name} accuracy: never reached ≥ ", threshold, " within ", Number(config["steps"], None),
                " steps", *extra)  # fmt: skip
    accuracy = document["series"][f"{name} accuracy"][document["steps"].index(step)]
    return (f"{name} accuracy first ≥ ", threshold, " at step ", Markup("**"), Number(step, None), Markup("**"),
            " (measured ", Number(accuracy), ")")  # fmt: skip


def _changes_table(changes: Mapping[str, Mapping[str, Any]]) -> Table:
    rows = tuple(
        ((str(name),), _change(change["around_train_event"]), _change(change["around_test_event"]),
         (_LARGER[change["larger_around"]],), (Number(change["median_over_run"], undefined="n/a"),))
        for name, change in changes.items()
    )  # fmt: skip
    return Table(_COLUMNS, rows)


def _answer(changes: Mapping[str, Mapping[str, Any]]) -> Line:
    answers = [f"{name} changed more around the {change['larger_around']}-accuracy jump"
               for name, change in changes.items() if change["larger_around"]]  # fmt: skip
    if not answers:
        return ("Answer: no comparison: test accuracy never reached the threshold.",)
    return ("Answer: " + "; ".join(answers) + ".",)


def timing_line(seconds: Mapping[str, Any]) -> Line:
    """``training 5.6 s, measurement 1.9 s, total 7.4 s``."""
    return ("training ", Number(seconds["train"], 1), " s, measurement ", Number(seconds["measure"], 1),
            " s, total ", Number(seconds["total"], 1), " s")  # fmt: skip


def grokking_page(document: Document) -> Page:
    """SUMMARY.md."""
    config, events = document["config"], document["events"]
    window = Number(events["window_checkpoints"], None)
    title: Line = ("Grokking on a+b mod ", Number(config["p"], None), " (train fraction ",
                   Number(config["train_fraction"], None), ", seed ", Number(config["seed"], None), ")")  # fmt: skip
    optimizer = config.get("optimizer", {"lr": 1e-3, "weight_decay": 1.0, "betas": [0.9, 0.98]})
    betas = ", ".join(f"{beta:g}" for beta in optimizer["betas"])
    setup: Line = (f"{_model(config['model'])}; AdamW lr {optimizer['lr']:g}, weight decay "
                   f"{optimizer['weight_decay']:g}, betas ({betas}), full batch, ",
                   Number(config["steps"], None), " steps, a checkpoint every ", Number(config["save_every"], None),
                   f" steps ({len(document['steps'])} checkpoints), measured with nc-audit's measure_trajectory on "
                   "the train and test splits.")  # fmt: skip
    statistic: Line = ("Statistic: Σ_j |m(s_(j+1)) − m(s_j)| for j from i−", window, " to i+", window, "−1, the "
                       "total variation of a metric over the ", window, " checkpoints either side of the event's "
                       "checkpoint i (clipped at the ends). MIR/HDR (train features): K_W vs the train class means; "
                       "(test features): K_W vs the test features' own class means.")  # fmt: skip
    events_list = Bullets((_event(document, "train", events["train_accuracy_step"]),
                           _event(document, "test", events["test_accuracy_step"])))  # fmt: skip
    blocks: list[Block] = [Paragraph(setup), events_list, Paragraph(statistic), _changes_table(events["changes"]),
              Paragraph(_answer(events["changes"]))]  # fmt: skip
    seconds = document.get("seconds") or {}
    if seconds:
        blocks.append(Paragraph(("Time: ", *timing_line(seconds), ".")))
    return Page(title, tuple(blocks))


def event_lines(document: Document) -> tuple[Line, ...]:
    """The console's ``train accuracy ≥ 0.99: at step 100`` lines, one per split."""
    events, steps = document["events"], document["config"]["steps"]
    lines = []
    for name in ("train", "test"):
        step = events[f"{name}_accuracy_step"]
        reached: Line = ("at step ", Number(step, None)) if step is not None else ("never within ", Number(steps, None), " steps")  # fmt: skip
        lines.append((f"{name} accuracy ≥ ", Number(events["threshold"], None), ": ", *reached))
    return tuple(lines)
