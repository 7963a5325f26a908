"""Rendering of the studies' results documents: the Markdown page (settings + table) and the PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _recipe_text(settings: dict[str, Any]) -> str:
    recipe = settings["recipe"]
    drop = ", last partial batch dropped" if recipe["drop_last"] else ""
    return (f"SGD momentum {recipe['momentum']:g}, lr {recipe['lr']:g} cosine over {recipe['epochs']} epochs, "
            f"weight decay {recipe['weight_decay']:g}, batch {recipe['batch_size']}{drop}")  # fmt: skip


def _model_text(model: dict[str, Any]) -> str:
    config = model["config"]
    widths = " → ".join(str(w) for w in [config["input_dim"], *config["hidden"]])
    return f"mlp {widths} (Linear → BatchNorm → ReLU) → {model['num_classes']} classes"


def label_smoothing_markdown(document: dict[str, Any], table: str) -> str:
    settings, targets = document["settings"], document["targets"]
    seeds = ", ".join(str(s) for s in settings["seeds"])
    return "\n".join([
        f"# Label smoothing on {settings['data']} (`nc-audit study label-smoothing`)",
        "",
        f"Model: {_model_text(document['model'])}, trained from scratch per run: {_recipe_text(settings)}; "
        f"cross-entropy with label smoothing ε; seeds {seeds}. NC1, MIR, HDR and NC4 on the train features "
        f"(K_W against the train class means; MIR_NC = {targets['mir']:.4f}); test accuracy on the test split. "
        "Mean ± sample standard deviation over seeds.",
        "",
        table,
    ])  # fmt: skip


def plot_label_smoothing(document: dict[str, Any], path: Path) -> None:
    from nc_audit.report.studies import Panel, geometry_panels, plot_study

    panels = [Panel("test_accuracy", "test accuracy"), *geometry_panels(document["targets"], "train")]
    seeds = len(document["settings"]["seeds"])
    plot_study(document["summary"], "epsilon", panels, path, xlabel="label smoothing ε",
               title=f"label smoothing on {document['settings']['data']}: mean ± std over {seeds} seed(s)")  # fmt: skip


def _form_text(recipe: dict[str, Any]) -> str:
    """The regulariser's form as the recipe records it; a recipe without one predates the forms (max)."""
    target, head = recipe.get("regularizer_target", "max"), recipe.get("regularizer_head", "trainable")
    formula = "λ·|MIR − MIR*| + λ·|HDR − HDR*|" if target == "nc" else "−λ·MIR + λ·HDR"
    return f"form {target}/{head}: {formula}, docs/METRICS.md"


def semi_supervised_markdown(document: dict[str, Any], table: str) -> str:
    settings, recipe = document["settings"], document["settings"]["recipe"]
    seeds = ", ".join(str(s) for s in settings["seeds"])
    return "\n".join([
        f"# Semi-supervised {settings['data']} (`nc-audit study semi-supervised`)",
        "",
        f"Model: {_model_text(document['model'])}, trained from scratch per run on K labeled samples per class "
        f"(a seeded stratified subset of the train split; the rest unlabeled): {recipe['steps']} steps of SGD "
        f"(Nesterov momentum {recipe['momentum']:g}, lr {recipe['lr']:g}·cos(7πk/16K), weight decay "
        f"{recipe['weight_decay']:g}), batch {recipe['batch_size']} labeled + {recipe['unlabeled_ratio']}× as many "
        f"unlabeled. \"supervised\": the labeled samples alone; FixMatch: confidence threshold "
        f"{recipe['threshold']:g} on the weak view, trained on the strong view; λ: weight of the MIR/HDR regulariser "
        f"({_form_text(recipe)}) on the "
        "labeled and confidently pseudo-labeled features (pseudo-labels supply the head rows). Confident share "
        "and pseudo-label accuracy: over the last 10% of steps. NC1, MIR, HDR: the whole train split with its "
        f"true labels (MIR_NC = {document['targets']['mir']:.4f}). Seeds {seeds}; mean ± sample standard deviation.",
        "",
        table,
    ])  # fmt: skip


def plot_semi_supervised(document: dict[str, Any], path: Path) -> None:
    from nc_audit.report.studies import Panel, geometry_panels, plot_study

    panels = [Panel("test_accuracy", "test accuracy"), *geometry_panels(document["targets"], "train")]
    seeds = len(document["settings"]["seeds"])
    plot_study(document["summary"], "setting", panels, path, xlabel="setting", line_key="labels_per_class",
               categorical=True, title=f"semi-supervised {document['settings']['data']}: mean ± std over {seeds} seed(s)")  # fmt: skip
