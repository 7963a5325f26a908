"""What the pictures show (issue 21 item 8): the HTML checkpoints table fits a 1280 px window (it wraps or
scrolls in its own box, the checks column is never cut), the gate sentence appears only when a gate was
given, plot titles, ticks and legends fit their figure (long paths cut in the middle, hashes to 12
digits), and every legend entry is a line drawn inside its axis — and every labelled line is in the legend.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from runs import parse_html

from nc_audit.gating.gate import gate
from nc_audit.report.figures import interpolation_figure, report_figure
from nc_audit.report.html import STYLE, trajectory_html
from nc_audit.report.model import Report, Trajectory
from nc_audit.report.plots import Panel, figure_png, panel_figure, trajectory_figure

LONG = "runs/" + "very-long-experiment-name-" * 8 + "/checkpoints"
HASH = "3f2a9c01be77" + "d4" * 26  # a sha256-like run of hex digits


def record(index: int, label: str) -> Report:
    metrics = {"nc1": 1.0 / index, "nc3": 0.2, "nc4": 0.01, "mir": 0.87, "hdr": 0.1}
    return Report(
        checkpoint={"path": f"{LONG}/{label}", "sha256": HASH, "head": "fc"},
        features={"path": "f.h5", "split": "train", "num_samples": 100, "feature_dim": 8, "num_classes": 10},
        conventions={"global_mean": "sample-weighted"},
        metrics=metrics,
        targets={"nc1": 0.0, "nc3": 0.0, "nc4": 0.0, "mir": 0.952351, "hdr": 0.0},
        details={"accuracy": 0.9, "ncc_accuracy": 0.8},
        step=index,
        label=f"{LONG}/{HASH}/{label}",
        check_ranges=False,
    )


def run(rules: tuple[str, ...] = ()) -> Trajectory:
    return gate(Trajectory(tuple(record(i, f"epoch_{i:04d}.pt") for i in (1, 2, 3))), rules, which="last")


# --- HTML layout -----------------------------------------------------------------------------------------
def test_every_table_is_in_a_box_that_scrolls_and_no_width_exceeds_1280_px() -> None:
    text = trajectory_html(run(("nc1 <= 0.5", "mir >= 0.9")))
    parse_html(text)  # self-contained and well-formed
    body = ET.fromstring(text.split("\n", 1)[1]).find("body")
    assert body is not None
    parents = {child: parent for parent in body.iter() for child in parent}
    tables = list(body.iter("table"))
    assert len(tables) >= 3
    for found in tables:
        assert parents[found].tag == "div" and parents[found].get("class") == "wide"
    rule = re.search(r"\.wide\s*\{([^}]*)\}", STYLE)
    assert rule is not None
    declarations = {
        k.strip(): v.strip() for k, v in (d.split(":") for d in rule.group(1).split(";") if ":" in d)
    }
    assert declarations["overflow-x"] == "auto" and declarations["max-width"] == "100%"
    widths = [int(px) for px in re.findall(r"(\d+)px", STYLE + text.split("</style>")[1].split("<img")[0])]
    assert widths and max(widths) <= 1280  # the page's own max-width included
    assert "table-layout: fixed" not in STYLE


def test_the_checks_column_is_kept_and_long_labels_may_wrap() -> None:
    page = parse_html(trajectory_html(run(("nc1 <= 0.5",))))
    header = page.rows[0]
    assert header[-1] == "checks"
    assert all(len(row) == len(header) for row in page.rows[1:5])
    wrapped = re.search(r"([^{}]*)\{[^}]*overflow-wrap:\s*anywhere", STYLE)
    assert wrapped is not None
    assert {"h1", "p", "li", "td"} <= {
        name.strip() for name in wrapped.group(1).split(",")
    }  # long paths wrap


def test_the_gate_sentence_appears_only_when_a_gate_was_given() -> None:
    ungated = trajectory_html(run())  # gated in "last" mode by default, but with no rule and no baseline
    assert "checkpoint is gated" not in ungated
    gated = trajectory_html(run(("nc1 <= 0.5",)))
    assert "the last checkpoint is gated (--gate last)" in gated


@pytest.mark.skipif(
    not any(shutil.which(name) for name in ("chromium", "chromium-browser")), reason="no chromium on PATH"
)
def test_the_page_fits_a_1280_px_window_in_headless_chromium(tmp_path: Path) -> None:
    browser = next(path for name in ("chromium", "chromium-browser") if (path := shutil.which(name)))
    text = trajectory_html(run(("nc1 <= 0.5", "mir >= 0.9")))
    probe = (  # the test's own copy: the page's widest element, written into the DOM for --dump-dom
        "<script>window.onload=function(){var w=document.documentElement.scrollWidth;"
        "document.body.setAttribute('data-scroll-width', String(w));};</script></body>"
    )
    page = tmp_path / "page.html"
    page.write_text(text.replace("</body>", probe), encoding="utf-8")
    shot = tmp_path / "shot.png"
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"]
    subprocess.run(
        [*common, f"--screenshot={shot}", page.as_uri()], check=True, timeout=120, capture_output=True
    )
    assert shot.is_file() and shot.stat().st_size > 0
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()], check=True, timeout=120, capture_output=True, text=True
    ).stdout
    found = re.search(r'data-scroll-width="(\d+)"', dom)
    assert found is not None and int(found.group(1)) <= 1280


# --- plots -----------------------------------------------------------------------------------------------
def _texts(figure: Any) -> list[Any]:
    texts = [*figure.texts]
    for ax in figure.axes:
        low, high = sorted(ax.get_xlim())
        ticks = [tick for tick in ax.get_xticklabels() if low <= tick.get_position()[0] <= high]
        texts += [ax.title, *(tick for tick in ticks if not tick.get_text().startswith("$"))]
        legend = ax.get_legend()
        if legend is not None:
            texts += legend.get_texts()
    return [text for text in texts if text.get_text()]


def _assert_texts_fit(figure: Any) -> None:
    figure_png(figure)  # draws the figure (layout included)
    renderer = figure.canvas.get_renderer()
    width = figure.bbox.width
    for text in _texts(figure):
        box = text.get_window_extent(renderer)
        assert box.x0 >= -1 and box.x1 <= width + 1, f"{text.get_text()!r} runs off the figure"
        assert HASH not in text.get_text()


def test_trajectory_titles_ticks_and_legends_fit_with_long_labels_and_hashes() -> None:
    long_scalar = "a_monitor_scalar_with_a_very_long_name_" * 3
    records = [  # no steps: the x ticks are the checkpoint labels
        item.changed(step=None, metrics={**item.metrics, long_scalar: 1.0}) for item in run()
    ]
    figure = trajectory_figure(Trajectory(tuple(records)), title=f"nc-audit {LONG} {HASH}")
    _assert_texts_fit(figure)
    ticks = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert ticks[0].endswith("epoch_0001.pt") and "…" in ticks[0]


def test_report_and_interpolation_titles_fit() -> None:
    report = record(1, f"{HASH}_" + "x" * 200 + ".pt")
    figure = report_figure(report.changed(checkpoint={**report.checkpoint, "path": report.label}))
    _assert_texts_fit(figure)
    assert "3f2a9c01be77…" in figure.axes[0].get_title()
    document = {
        "a": {"path": f"{LONG}/{'a' * 120}.pt"},
        "b": {"path": f"{LONG}/{HASH}.pt"},
        "data": "file.npz:" + "k" * 200,
        "split": "test",
        "targets": {"nc1": 0.0, "mir": 0.95},
        "records": [
            {"alpha": a, "accuracy": 0.9, "loss": 0.3, "metrics": {"nc1": 0.5, "mir": 0.9}} for a in (0, 1)
        ],
    }
    _assert_texts_fit(interpolation_figure(document))


def _assert_legend_matches_lines(figure: Any) -> None:
    for ax in figure.axes:
        drawn = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
        legend = ax.get_legend()
        entries = [text.get_text() for text in legend.get_texts()] if legend is not None else []
        assert entries == [line.get_label() for line in drawn], ax.get_title()
        low, high = ax.get_ylim()
        for line in drawn:
            if line.get_label().startswith("NC target"):
                y = float(line.get_ydata()[0])
                assert min(low, high) <= y <= max(low, high), f"{ax.get_title()}: target {y} outside the axis"


def test_target_lines_far_outside_the_data_are_drawn_and_in_the_legend_together() -> None:
    panels = [
        Panel("far above", {"x": [0.1, 0.2, 0.15]}, {"NC target": 100.0}),
        Panel("far below on log", {"y": [1.0, 2.0, 3.0]}, {"NC target": 1e-9}, log=True),
        Panel("zero on log", {"z": [1.0, 2.0, 3.0]}, {"NC target": 0.0}, log=True),
        Panel("not finite", {"w": [1.0, 2.0, 3.0]}, {"NC target": float("nan")}),
    ]
    figure = panel_figure([1, 2, 3], panels, xlabel="step", title="t")
    figure_png(figure)
    _assert_legend_matches_lines(figure)
    titles = [ax.get_title() for ax in figure.axes]
    assert "NC target 0" in titles[2] and "NC target nan" in titles[3]  # named instead of drawn


def test_trajectory_legends_match_their_lines() -> None:
    figure = trajectory_figure(run())
    figure_png(figure)
    _assert_legend_matches_lines(figure)
