"""The studies' output (`nc-audit study label-smoothing|semi-supervised`): the Markdown page (settings and
table), the per-run console line and the PNG, built as typed pages (:mod:`nc_audit.report.tables`) from a
study's results document. The data name (a user's file for label smoothing) is a piece the renderers
escape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nc_audit.report.studies import Panel, geometry_panels, plot_study, summary_table
from nc_audit.report.tables import Line, Markup, Number, Page, Paragraph, Table

Document = Mapping[str, Any]
Record = Mapping[str, Any]

#: The group columns of each study's table: (summary column, header).
LABEL_SMOOTHING_GROUPS = (("epsilon", "ε"),)
SEMI_SUPERVISED_GROUPS = (("labels_per_class", "labels/class"), ("setting", "setting"))


def study_table(
    document: Document, groups: Sequence[tuple[str, str]], headers: Sequence[tuple[str, str]]
) -> Table:
    """The study's summary rows as a table: its groups, then mean ± std per column."""
    return summary_table(document["summary"], groups, headers)


def recipe_line(settings: Mapping[str, Any]) -> Line:
    """The from-scratch recipe of a study's settings, as every study page states it."""
    recipe = settings["recipe"]
    drop = ", last partial batch dropped" if recipe["drop_last"] else ""
    return ("SGD momentum ", Number(recipe["momentum"], None), ", lr ", Number(recipe["lr"], None), " cosine over ",
            Number(recipe["epochs"], None), " epochs, weight decay ", Number(recipe["weight_decay"], None),
            ", batch ", Number(recipe["batch_size"], None), drop)  # fmt: skip


def load_text(records: Sequence[Mapping[str, Any]]) -> str:
    """'; load average (1 min) at the end of the runs A–B' from the records that hold one, else ''."""
    loads = [float(r["load_average"]) for r in records if isinstance(r.get("load_average"), (int, float))]
    if not loads:
        return ""
    return f"; load average (1 min) at the end of the runs {min(loads):.1f}–{max(loads):.1f}"


def wall_time_line(records: Sequence[Mapping[str, Any]], unit: str = "runs", detail: str = "") -> Line:
    """'Wall time of the study: N s (sum of the runs' times[detail]); load average … .': the sum of the
    records' own times (records hold numbers: nc_audit.experiments.studies.record_checks) and their load,
    where they recorded one. Every study page ends with it."""
    seconds = sum(float(r["seconds"]) for r in records if isinstance(r.get("seconds"), (int, float)))
    return ("Wall time of the study: ", Number(seconds, 0), f" s (sum of the {unit}' times{detail})",
            load_text(records), ".")  # fmt: skip


def wall_time(document: Document) -> tuple[Paragraph, ...]:
    """The wall-time paragraph of a study whose runs recorded their times; none for a document written
    before they did."""
    records = document.get("records") or ()
    if not any(isinstance(r.get("seconds"), (int, float)) for r in records):
        return ()
    return (Paragraph(wall_time_line(records)),)


def model_text(model: Mapping[str, Any]) -> str:
    """``mlp 64 → 64 (Linear → BatchNorm → ReLU) → 10 classes`` from a study document's model entry."""
    config = model["config"]
    widths = " → ".join(str(w) for w in [config["input_dim"], *config["hidden"]])
    return f"mlp {widths} (Linear → BatchNorm → ReLU) → {model['num_classes']} classes"


def _seeds(settings: Mapping[str, Any]) -> str:
    return ", ".join(str(seed) for seed in settings["seeds"])


def label_smoothing_page(document: Document, table: Table) -> Page:
    """RESULTS.md of the label-smoothing study."""
    settings, targets = document["settings"], document["targets"]
    title: Line = (
        "Label smoothing on ",
        str(settings["data"]),
        " (",
        Markup("`nc-audit study label-smoothing`"),
        ")",
    )
    setup: Line = (f"Model: {model_text(document['model'])}, trained from scratch per run: ", *recipe_line(settings),
                   f"; cross-entropy with label smoothing ε; seeds {_seeds(settings)}. NC1, MIR, HDR and NC4 on the "
                   "train features (K_W against the train class means; MIR_NC = ", Number(targets["mir"]),
                   "); test accuracy on the test split. Mean ± sample standard deviation over seeds.")  # fmt: skip
    return Page(title, (Paragraph(setup), table, *wall_time(document)))


def _form_text(recipe: Document) -> str:
    """The regulariser's form as the recipe records it; a recipe without one predates the forms (max)."""
    target, head = recipe.get("regularizer_target", "max"), recipe.get("regularizer_head", "trainable")
    formula = "λ·|MIR − MIR*| + λ·|HDR − HDR*|" if target == "nc" else "−λ·MIR + λ·HDR"
    return f"form {target}/{head}: {formula}, docs/METRICS.md"


def semi_supervised_page(document: Document, table: Table) -> Page:
    """RESULTS.md of the semi-supervised study."""
    settings, recipe = document["settings"], document["settings"]["recipe"]
    title: Line = (
        "Semi-supervised ",
        str(settings["data"]),
        " (",
        Markup("`nc-audit study semi-supervised`"),
        ")",
    )
    setup: Line = (
        f"Model: {model_text(document['model'])}, trained from scratch per run on K labeled samples per class "
        "(a seeded stratified subset of the train split; the rest unlabeled): ", Number(recipe["steps"], None),
        " steps of SGD (Nesterov momentum ", Number(recipe["momentum"], None), ", lr ", Number(recipe["lr"], None),
        "·cos(7πk/16K), weight decay ", Number(recipe["weight_decay"], None), "), batch ",
        Number(recipe["batch_size"], None), " labeled + ", Number(recipe["unlabeled_ratio"], None), "× as many "
        'unlabeled. "supervised": the labeled samples alone; FixMatch: confidence threshold ',
        Number(recipe["threshold"], None), " on the weak view, trained on the strong view; λ: weight of the MIR/HDR "
        f"regulariser ({_form_text(recipe)}) on the labeled and confidently pseudo-labeled features (pseudo-labels "
        "supply the head rows). "
        "Confident share and pseudo-label accuracy: over the last 10% of steps. NC1, MIR, HDR: the whole train "
        "split with its true labels (MIR_NC = ", Number(document["targets"]["mir"]),
        f"). Seeds {_seeds(settings)}; mean ± sample standard deviation.",
    )  # fmt: skip
    return Page(title, (Paragraph(setup), table, *wall_time(document)))


def label_smoothing_line(record: Record) -> Line:
    """``ε=0.1 seed 2: test accuracy 0.9822, NC1 0.0016, MIR 0.9520, HDR 0.0009``."""
    metrics = record["train"]["metrics"]
    return ("ε=", Number(record["epsilon"], None), " seed ", Number(record["seed"], None), ": test accuracy ",
            Number(record["test"]["accuracy"]), ", NC1 ", Number(metrics["nc1"]), ", MIR ", Number(metrics["mir"]),
            ", HDR ", Number(metrics["hdr"]))  # fmt: skip


def semi_supervised_line(record: Record) -> Line:
    """``K=4 FixMatch λ=0.1 seed 0: test accuracy 0.9141, confident share 0.803, MIR 0.9874, HDR 0.1108``."""
    metrics, share = record["train"]["metrics"], record["stats"]["mask_rate"]
    confident: Line = () if share is None else (", confident share ", Number(share, 3))
    return ("K=", Number(record["labels_per_class"], None), " ", str(record["setting"]), " seed ",
            Number(record["seed"], None), ": test accuracy ", Number(record["test"]["accuracy"]), *confident,
            ", MIR ", Number(metrics["mir"]), ", HDR ", Number(metrics["hdr"]))  # fmt: skip


def _panels(document: Document) -> list[Panel]:
    return [Panel("test_accuracy", "test accuracy"), *geometry_panels(document["targets"], "train")]


def plot_label_smoothing(document: Document, path: Path) -> None:
    """Test accuracy, NC1, MIR and HDR against ε, mean ± std over seeds."""
    seeds = len(document["settings"]["seeds"])
    plot_study(document["summary"], "epsilon", _panels(document), path, xlabel="label smoothing ε",
               title=f"label smoothing on {document['settings']['data']}: mean ± std over {seeds} seed(s)")  # fmt: skip


def plot_semi_supervised(document: Document, path: Path) -> None:
    """Test accuracy, NC1, MIR and HDR per setting, one line per labels-per-class value."""
    seeds = len(document["settings"]["seeds"])
    plot_study(document["summary"], "setting", _panels(document), path, xlabel="setting", line_key="labels_per_class",
               categorical=True, title=f"semi-supervised {document['settings']['data']}: mean ± std over {seeds} seed(s)")  # fmt: skip
