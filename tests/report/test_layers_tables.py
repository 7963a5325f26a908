"""The ``--layers`` tables (issue 22 point 4): ``track``'s layer × checkpoint table of one layer metric in
the console, Markdown and HTML (at most 8 checkpoints, evenly spread, first and last, in the console and
Markdown; all in HTML), and ``measure``'s per-layer table in HTML; names from inputs print literally."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import mlp_checkpoint
from runs import invoke, parse_html

from nc_audit.report.formats import registry
from nc_audit.report.layers_console import LAYER_COLUMNS
from nc_audit.report.layers_trajectory import layer_grid, spread
from nc_audit.report.model import LAYER_METRICS, LayerResult, Report, Trajectory
from nc_audit.report.numbers import short

LAYERS = ("body.1", "body.3", "head")
HOSTILE = ("[bold]x[/]", "a|b", "<script>alert(1)</script>", ":smile:")


def layer(name: str, index: int, step: int) -> LayerResult:
    """A layer whose every metric is distinct: (index + 1) / (step + 2) + a metric offset."""
    metrics = {key: (index + 1) / (step + 2) + k / 1000 for k, key in enumerate(LAYER_METRICS)}
    against = "head" if name == "head" else "probe"
    return LayerResult.of(name, "Linear", 16 if against == "head" else 32, against, metrics, None)


def record(step: int | None, names: tuple[str, ...] = LAYERS, label: str | None = None) -> Report:
    at = 0 if step is None else step
    return Report(
        checkpoint={"path": f"run/epoch_{at}.pt"},
        features={"num_classes": 10},
        conventions={},
        metrics={"nc1": 0.5},
        targets={"nc1": 0.0, "nc1_cdnv": 0.0, "mir": 0.952351, "hdr": 0.0},
        step=step,
        label=label or f"epoch_{at}.pt",
        layers=tuple(layer(name, i, at) for i, name in enumerate(names)),
        check_ranges=False,
    )


def run(steps: int, metric: str = "nc1") -> Trajectory:
    return Trajectory(tuple(record(step) for step in range(steps)), layers_metric=metric)


def render(name: str, trajectory: Trajectory) -> str:
    return registry.text_format(name).render(trajectory)


def cells(text: str, name: str) -> list[str]:
    """The cells of the console table row of layer ``name``."""
    row = next(line for line in text.splitlines() if line.startswith(f"│ {name} "))
    return [cell.strip() for cell in row.split("│")[1:-1]]


@pytest.mark.parametrize(
    ("count", "expected"),
    [(1, (0,)), (2, (0, 1)), (8, tuple(range(8))), (9, (0, 1, 2, 3, 5, 6, 7, 8))],
)
def test_the_selection_keeps_all_up_to_8_then_8_spread_with_first_and_last(
    count: int, expected: tuple[int, ...]
) -> None:
    assert spread(count) == expected


def test_8_of_100_are_evenly_spread_with_the_first_and_the_last() -> None:
    picked = spread(100)
    assert len(picked) == 8 and picked[0] == 0 and picked[-1] == 99
    gaps = [b - a for a, b in pairwise(picked)]
    assert min(gaps) >= 14 and max(gaps) <= 15  # 99 / 7 = 14.14...
    assert spread(0) == ()


def test_the_console_table_has_every_layer_and_the_metric_of_each_shown_checkpoint() -> None:
    trajectory = run(100)
    text = render("table", trajectory)
    assert "layers × checkpoints: nc1" in text
    for name in LAYERS:
        assert len(cells(text, name)) == 3 + 8 + 1
    row = cells(text, "body.3")
    grid = layer_grid(trajectory, "nc1")
    assert grid is not None and grid.columns == tuple(str(step) for step in spread(100))
    assert row[:3] == ["body.3", "32", "probe"]
    assert row[3] == short(trajectory[0].layers[1].nc1) and row[-2] == short(trajectory[99].layers[1].nc1)
    assert row[-1] == "0"  # the NC target of nc1
    assert "8 of 100 checkpoints shown" in re.sub(r"\s+", " ", text)


def test_layers_metric_picks_the_metric_of_the_table() -> None:
    trajectory = run(3, metric="mir")
    text = render("table", trajectory)
    assert "layers × checkpoints: mir" in text
    assert cells(text, "body.1")[3:] == [*(short(r.layers[0].mir) for r in trajectory), "0.9524"]
    markdown = render("markdown", trajectory)
    assert "mir of the input of each layer" in markdown and short(trajectory[2].layers[0].mir) in markdown


def test_a_checkpoint_without_a_layer_shows_a_dash_and_a_label_without_a_step() -> None:
    trajectory = Trajectory((record(1), record(None, ("body.1", "head"), label="last.pt")))
    text = render("table", trajectory)
    assert cells(text, "body.3")[3:5] == [short(2 / 3), "—"]
    assert "last.pt" in text


def test_markdown_and_html_hold_the_table() -> None:
    trajectory = run(12)
    markdown = render("markdown", trajectory)
    header = next(line for line in markdown.splitlines() if line.startswith("| layer |"))
    assert header == "| layer | width | vs | " + " | ".join(f"`{i}`" for i in spread(12)) + " | NC target |"
    assert "8 of 12 checkpoints shown" in markdown
    assert "| `head` | 16 | head |" in markdown
    html = render("html", trajectory)
    page = parse_html(html)
    assert page.row("layer") == ["layer", "width", "vs", *map(str, range(12)), "NC target"]
    assert page.row("body.1")[3] == short(trajectory[0].layers[0].nc1)
    assert "every checkpoint shown" in "".join(page.text)
    body = ET.fromstring(html.split("\n", 1)[1]).find("body")
    assert body is not None
    parents = {child: parent for parent in body.iter() for child in parent}
    for table in body.iter("table"):  # tests/report/test_pictures.py: every table in a box that scrolls
        assert parents[table].tag == "div" and parents[table].get("class") == "wide"


def test_measure_layers_html_holds_the_per_layer_table() -> None:
    report = record(4)
    page = parse_html(render("html", Trajectory.of(report)))
    assert page.row("layer") == ["layer", "module", "width", "vs", *(title for _, title in LAYER_COLUMNS)]
    row = page.row("body.3")
    assert row[:4] == ["body.3", "Linear", "32", "probe"] and row[4] == "0.3333"  # nc1 = (1 + 1) / (4 + 2)
    assert page.row("NC target")[4] == "0"


def hostile_run() -> Trajectory:
    records = tuple(record(None, HOSTILE, label=f"{name}.pt") for name in HOSTILE)
    return Trajectory(records)


def test_hostile_names_print_literally_in_the_console() -> None:
    text = render("table", hostile_run())
    for name in HOSTILE:
        assert name in text  # no markup, no emoji
    assert "😄" not in text


def test_hostile_names_print_literally_in_markdown() -> None:
    markdown = render("markdown", hostile_run())
    section = markdown.split("**Layers × checkpoints**")[1]
    table = [line for line in section.splitlines() if line.startswith("|")]
    widths = {len(re.split(r"(?<!\\)\|", line)) for line in table}
    assert widths == {3 + len(HOSTILE) + 1 + 2}  # no | of a name splits a cell
    header = table[0]
    for name in ("[bold]x[/]", "<script>alert(1)</script>", ":smile:"):
        assert f"`{name}.pt`" in header  # a code span: no link, tag or emoji
        assert f"| `{name}` |" in section
    assert "`a\\|b.pt`" in header and "| `a\\|b` |" in section
    outside = re.sub(r"`[^`]*`", "", section)
    assert "<script>" not in outside and ":smile:" not in outside and "[bold]" not in outside


def test_hostile_names_print_literally_in_html() -> None:
    html = render("html", hostile_run())
    assert "<script>" not in html
    page = parse_html(html)
    assert page.row("layer")[3:7] == [f"{name}.pt" for name in HOSTILE]
    for name in HOSTILE:
        assert page.row(name)[0] == name


def test_track_layers_prints_the_table_and_writes_it_to_html_and_markdown(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for epoch in (1, 2):
        mlp_checkpoint(run_dir / f"epoch_{epoch}.pt", hidden=[16], seed=epoch)
    html, markdown, out = tmp_path / "run.html", tmp_path / "run.md", tmp_path / "run.json"
    data = "gaussian:classes=10,dim=64,samples=60"
    result = invoke(
        "track", run_dir, "--data", data, "--cache-dir", tmp_path / "cache", "--layers", "all",
        "--layers-metric", "hdr", "--html", html, "--markdown", markdown, "--json", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "layers × checkpoints: hdr" in result.stdout
    trajectory = Trajectory.from_dict(json.loads(out.read_text()), "run.json")
    value = short(trajectory[1].layers[-1].hdr)
    assert cells(result.stdout, "head")[4] == value
    assert "hdr of the input of each layer" in markdown.read_text()
    assert parse_html(html.read_text()).row("head")[4] == value
