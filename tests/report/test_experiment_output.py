"""Experiment output (prune, the studies, the grokking demo) through the typed page model: the pages are the
ones the CLI wrote before the model existed (tests/report/expout_golden.json, rendered by the former
cli/ code from the documents of expout_documents.py), and no input name can change their structure."""

from __future__ import annotations

import io
import json
import statistics
from pathlib import Path

import pytest
import torch
from expout_documents import (
    grokking_document,
    label_smoothing_document,
    pruning_document,
    semi_supervised_document,
)
from hostile.markdown_contract import assert_clean_console, assert_clean_markdown

from nc_audit.core.threads import single_threaded_kernels, torch_threads
from nc_audit.experiments.prune_summary import HEADERS, pruning_summary
from nc_audit.experiments.studies.label_smoothing import COLUMNS as LS_COLUMNS
from nc_audit.experiments.studies.semi_supervised import COLUMNS as SS_COLUMNS
from nc_audit.report.consoles import new_console
from nc_audit.report.grokking_summary import event_lines, grokking_page
from nc_audit.report.prune import pruning_line, pruning_page, pruning_table
from nc_audit.report.study_pages import (
    LABEL_SMOOTHING_GROUPS,
    SEMI_SUPERVISED_GROUPS,
    label_smoothing_page,
    semi_supervised_line,
    semi_supervised_page,
    study_table,
)
from nc_audit.report.tables import Code, Column, Number, Page, Paragraph, Spread, Table
from nc_audit.report.tables_console import console_text
from nc_audit.report.tables_markdown import page_text, table_text

GOLDEN = json.loads(Path(__file__).with_name("expout_golden.json").read_text(encoding="utf-8"))
#: Names a pull request may give a checkpoint, a data file or a label: a heading after a newline, a table
#: break, HTML, backticks, CR, a line separator, mathtext, ESC, Rich markup, a very long name.
HOSTILE = [
    "a`b\n## injected.pt",
    "x|y||z.pt",
    "<script>alert(1)</script>.pt",
    "``` fenced\n```",
    "a\rb\r\n# cr.pt",
    "line\u2028# separator\u2029.pt",
    "# starts a heading.pt",
    "- a list > quote | cell",
    "$\\frac$ and [link](http://x) ![img](y)",
    "\x1b[2J\x1b]0;owned\x07[red]red[/red]\x85",
    "`|<" * 400 + ".pt",
]


def _ls(data: str = "digits") -> str:
    document = label_smoothing_document(data)
    table = study_table(document, LABEL_SMOOTHING_GROUPS, [(n, h) for n, h, _ in LS_COLUMNS])
    return page_text(label_smoothing_page(document, table))


def _ss(setting: str = "FixMatch λ=0.1") -> str:
    document = semi_supervised_document(setting)
    table = study_table(document, SEMI_SUPERVISED_GROUPS, [(n, h) for n, h, _ in SS_COLUMNS])
    return page_text(semi_supervised_page(document, table))


def _prune(path: str = "runs/model.pt", data: str = "digits", finetune: int = 0) -> str:
    document = pruning_document(path, data, finetune)
    return page_text(pruning_page(document, pruning_table(pruning_summary(document), HEADERS)))


def test_pages_are_the_ones_written_before() -> None:
    """README blocks come from these pages: every byte as the former renderers wrote it."""
    assert _prune() == GOLDEN["prune0"]
    assert _prune(finetune=3) == GOLDEN["prune3"]
    assert _ls() == GOLDEN["ls"]
    assert _ss() == GOLDEN["ss"]
    assert page_text(grokking_page(grokking_document())) == GOLDEN["gk"]
    assert page_text(grokking_page(grokking_document(test_step=None))) == GOLDEN["gk_none"]


def test_pruning_columns_are_in_the_readme_order() -> None:
    header = table_text(pruning_table(pruning_summary(pruning_document()), HEADERS)).splitlines()[0]
    assert header == "| sparsity | kept | accuracy | test accuracy | NC1 | NC4 | MIR | HDR |"


def test_pruning_summary_is_mean_and_sample_std_per_sparsity() -> None:
    rows = pruning_summary(pruning_document())
    assert [row["sparsity"] for row in rows] == [0.0, 0.5, 0.9]  # first-seen order
    assert rows[1]["accuracy"]["mean"] == pytest.approx(0.85)
    assert rows[1]["accuracy"]["std"] == pytest.approx(statistics.stdev([0.9, 0.8]))  # n − 1, not n
    assert rows[1]["nc1"] == {"mean": 0.5, "std": 0.0, "n": 1}  # the undefined value is left out
    assert rows[2]["test_accuracy"] == {"mean": None, "std": None, "n": 0}


def test_spread_and_number_text() -> None:
    assert Spread(0.98226, 0.00314, 3).text() == "0.9823 ± 0.0031"
    assert Spread(0.98226, 0.0, 1).text() == "0.9823"
    assert Spread(None, None, 0).text() == "—"
    assert Spread.of({"mean": "0.5", "std": 1.0, "n": 2}).text() == "—"  # a string is not a number
    assert (
        Number(1).text() == "1.0000" and Number(0.05, None).text() == "0.05" and Number(4, None).text() == "4"
    )
    assert Number(float("nan"), undefined="n/a").text() == "n/a" and Number(7.25, 1).text() == "7.2"


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_no_name_changes_a_pages_structure(name: str) -> None:
    for text in (_prune(path=name), _prune(data=name), _ls(data=name), _ss(setting=name)):
        assert_clean_markdown(text)
    grokking = page_text(grokking_page(grokking_document(metric=name)))
    assert_clean_markdown(grokking)
    assert len(grokking.split("\n")) == len(GOLDEN["gk"].split("\n"))


def test_the_injected_heading_is_shown_escaped() -> None:
    """The issue's example: the heading stays in the title line, escaped, and nothing else moves."""
    text = _prune(path="a`b\n## injected.pt", data="x|y")
    title = text.splitlines()[0]
    assert title == "# Magnitude pruning of `a'b\\n## injected.pt` on x|y (`nc-audit prune`)"
    assert text.splitlines()[1:] == GOLDEN["prune0"].splitlines()[1:]


def test_input_at_the_start_of_a_line_opens_no_block_but_numbers_stay() -> None:
    page = Page(("t",), (Paragraph(("# not a heading",)), Paragraph(("1. not a list",))))
    assert page_text(page) == "# t\n\n\\# not a heading\n\n\\1. not a list\n"
    table = Table((Column("x"),), (((Number(-0.5),),), (("- x",),)))
    assert table_text(table).splitlines()[2:] == ["| -0.5000 |", "| - x |"]
    with pytest.raises(ValueError, match="2 cells in a table of 1"):
        Table((Column("x"),), ((("a",), ("b",)),))
    assert page_text(Page((Code("a`|b"),), ())) == "# `a'\\|b`\n"


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_console_lines_escape_every_input(name: str) -> None:
    record = {"labels_per_class": 4, "setting": name, "seed": 0, "test": {"accuracy": 0.5},
              "stats": {"mask_rate": 0.25}, "train": {"metrics": {"mir": 0.9, "hdr": None}}}  # fmt: skip
    out = io.StringIO()
    console = new_console(file=out, width=100_000, highlight=False, color_system=None)
    console.print(console_text(semi_supervised_line(record)), markup=True)
    printed = out.getvalue()
    assert_clean_console(printed)
    assert printed.count("\n") == 1 and printed.endswith(", MIR 0.9000, HDR —\n")
    if "[red]" in name:
        assert "[red]red[/red]" in printed  # shown, not taken as markup


def test_console_lines_are_the_former_ones() -> None:
    record = {"sparsity": 0.5, "kept": {"fraction": 0.5}, "accuracy": 1.0, "test_accuracy": None,
              "report": {"metrics": {"nc1": 0.006, "mir": 0.95171, "hdr": None}}}  # fmt: skip
    line = "sparsity 0.5 (kept 0.5000): accuracy 1.0000, NC1 0.0060, MIR 0.9517, HDR —"
    assert console_text(pruning_line(record)) == line
    assert [console_text(line) for line in event_lines(grokking_document(test_step=None))] == [
        "train accuracy ≥ 0.99: at step 100",
        "test accuracy ≥ 0.99: never within 300 steps",
    ]


def test_torch_threads_sets_and_restores() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        with torch_threads(None):
            assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with single_threaded_kernels(False):
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError
    assert torch.get_num_threads() == before


MATHTEXT = "a$\\frac$ b$x^2$.pt"


def test_figures_show_input_without_mathtext(tmp_path: Path) -> None:
    """A name with ``$\\frac$`` stopped measure --html, prune, the studies and interpolate --plot."""
    from nc_audit.report.figures import interpolation_figure, report_figure
    from nc_audit.report.model import Report
    from nc_audit.report.plots import figure_png
    from nc_audit.report.study_pages import plot_semi_supervised

    report = {
        "checkpoint": {"path": MATHTEXT},
        "metrics": {"nc1": 0.5, "mir": 0.9},
        "targets": {"nc1": 0, "mir": 1},
    }
    figure = report_figure(Report.from_dict(report, "run.json"))
    assert figure_png(figure).startswith(b"\x89PNG")
    assert figure.axes[0].title.get_text().endswith(MATHTEXT) and not figure.axes[0].title.get_parse_math()
    assert all(label.get_parse_math() for label in figure.axes[0].get_xticklabels())  # log ticks: 10^{-1}
    records = [
        {"alpha": a, "accuracy": 0.5, "loss": 1.0, "metrics": {"nc1": 1.0, "mir": 0.9}} for a in (0, 1)
    ]
    interpolation = {"a": {"path": MATHTEXT}, "b": {"path": "b.pt"}, "data": MATHTEXT, "records": records}
    assert figure_png(interpolation_figure(interpolation)).startswith(b"\x89PNG")
    plot_semi_supervised(semi_supervised_document(setting=MATHTEXT), tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes().startswith(b"\x89PNG")


def test_study_pages_state_the_wall_time_their_runs_recorded() -> None:
    """The label-smoothing and semi-supervised pages end with the sum of the runs' own times (and their
    load when recorded); a document whose runs recorded none (written before) gets no line."""
    for make, groups, columns, page in (
        (label_smoothing_document, LABEL_SMOOTHING_GROUPS, LS_COLUMNS, label_smoothing_page),
        (semi_supervised_document, SEMI_SUPERVISED_GROUPS, SS_COLUMNS, semi_supervised_page),
    ):
        document = make()
        table = study_table(document, groups, [(n, h) for n, h, _ in columns])
        assert "Wall time" not in page_text(page(document, table))
        timed = {**document, "records": [{"seconds": 100.4, "load_average": 2.5}, {"seconds": 20.3},
                                         {"seconds": "3", "load_average": 0.75}]}  # fmt: skip
        text = page_text(page(timed, table))
        assert text.rstrip().endswith(
            "Wall time of the study: 121 s (sum of the runs' times); load average (1 min) at the end of the "
            "runs 0.8–2.5."
        ), text[-300:]
