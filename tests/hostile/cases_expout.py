"""Issue 20 (experiment output): names from a pull request in the pages prune and the studies write.
A checkpoint or data file named to open a Markdown heading, table row, code span, HTML or mathtext must
show up escaped in RESULTS.md (or --markdown), on stdout and on stderr; see the README's "Experiment
output" table. Every case is generated (no binaries)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from generate import SAMPLES, SLOW_CASES, Case, case

#: A newline opening a heading, a table break, HTML, a backtick, CR, a line separator and mathtext.
INJECTED = "a`b\n## injected|<script>x<img src=x>\r\u2028$\\frac$"
PRUNE_ONE = ["--sparsities", "0", "--no-progress"]
#: Mathtext that does not parse, for a figure's title.
MATHTEXT = "a$\\frac$ b$x^2$"
#: The slow cases of this module (tests/report/test_experiment_output.py checks the same pages fast).
GENERATED = (
    "expout_prune_injected_checkpoint_name", "expout_prune_injected_data_name", "expout_prune_long_name",
    "expout_study_injected_data_name",
)  # fmt: skip


def _checkpoint(root: Path, stem: str) -> Path:
    path = root / f"{stem}.pt"
    shutil.copyfile(SAMPLES / "epoch_0300.pt", path)
    return path


def _data(root: Path, stem: str) -> Path:
    """200 random 64-wide inputs, 10 classes (one full batch of 64 and more for the studies)."""
    rng = np.random.default_rng(0)
    path = root / f"{stem}.npz"
    with open(path, "wb") as handle:
        np.savez(handle, inputs=rng.normal(size=(200, 64)).astype(np.float32), labels=np.arange(200) % 10)
    return path


def _clean(page: str) -> dict[str, object]:
    return {"markdown_clean": [page], "stdout_markdown": True}


@case
def case_expout_prune_injected_checkpoint_name(root: Path) -> Case:
    pt = _checkpoint(root, INJECTED)
    return Case(
        "expout_prune_injected_checkpoint_name", 2,
        "prune a checkpoint named a`b⏎## injected|<script>…\\r\\u2028$\\frac$.pt --format markdown: one heading, "
        "the name escaped in the title, stdout and stderr (a second heading and a mathtext error in the plot before)",
        [["prune", str(pt), "--data", "digits", "--out", str(root / "run"), "--markdown", str(root / "page.md"),
          "--format", "markdown", *PRUNE_ONE]],
        "ok", outputs=["run", "run/*", "page.md"], extra=_clean("page.md"),
    )  # fmt: skip


@case
def case_expout_prune_injected_data_name(root: Path) -> Case:
    pt = _checkpoint(root, "m")
    data = _data(root, INJECTED)
    return Case(
        "expout_prune_injected_data_name", 2,
        "prune m.pt --data <the same name>.npz --format markdown: the data name in the title escaped",
        [["prune", str(pt), "--data", str(data), "--out", str(root / "run"), "--format", "markdown", *PRUNE_ONE]],
        "ok", outputs=["run", "run/*"], extra=_clean("run/RESULTS.md"),
    )  # fmt: skip


@case
def case_expout_prune_long_name(root: Path) -> Case:
    pt = _checkpoint(root, "|`<#" * 60)
    return Case(
        "expout_prune_long_name", 2,
        "prune a checkpoint whose 243-byte name is |`<# repeated: the title stays one line with its code span "
        "closed, the table keeps its 8 columns",
        [["prune", str(pt), "--data", "digits", "--out", str(root / "run"), "--format", "markdown", *PRUNE_ONE]],
        "ok", outputs=["run", "run/*"], extra=_clean("run/RESULTS.md"),
    )  # fmt: skip


@case
def case_expout_study_injected_data_name(root: Path) -> Case:
    data = _data(root, INJECTED)
    return Case(
        "expout_study_injected_data_name", 2,
        "study label-smoothing --quick --data <the same name>.npz: the data name escaped in RESULTS.md's "
        "title, the plot drawn (mathtext escaped)",
        [["study", "label-smoothing", "--quick", "--data", str(data), "--out", str(root / "st"), "--no-progress"]],
        "ok", outputs=["st", "st/*"], extra={"markdown_clean": ["st/RESULTS.md"], "exists": "st/label_smoothing.png"},
    )  # fmt: skip


@case
def case_expout_measure_html_mathtext_name(root: Path) -> Case:
    pt, h5 = _checkpoint(root, MATHTEXT), root / f"{MATHTEXT}.h5"
    shutil.copyfile(SAMPLES / "epoch_0300.h5", h5)
    page = root / "report.html"
    return Case(
        "expout_measure_html_mathtext_name", 2,
        "measure a$\\frac$.pt --features a$\\frac$.h5 --html: the figure's title shows the name as written "
        "('ValueError: ... Expected \\frac{num}{den}' and exit 2 before)",
        [["measure", str(pt), "--features", str(h5), "--html", str(page), "--no-progress"]],
        "ok", outputs=[page.name],
    )  # fmt: skip


for _name in GENERATED:
    SLOW_CASES[_name] = "prunes and measures a model, or trains two (4–10 s on 2 idle cores, 17–40 s loaded)"
