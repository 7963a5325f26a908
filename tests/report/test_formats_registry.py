"""The format interface (report/formats): every format comes from one registry, a new format is one class
plus one registration and is reachable through the CLI's --format at once, and every registered text format
writes untrusted strings (labels, paths, notes, rule text) through its escaper: none of them can forge a
heading, a tag, an XML element or a terminal line.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from runs import collapsing_problem, invoke, write_head_checkpoint

from nc_audit.gating.gate import gate
from nc_audit.report.formats import registry
from nc_audit.report.formats.base import TextFormat
from nc_audit.report.model import Report, Trajectory

HOSTILE = "a`b\n## injected <script>x</script>\x1b[2J\r\n::error::forged.pt"


class ToyFormat(TextFormat):
    """A toy format: one line per record with its label and verdict."""

    name = "toy"
    escape = staticmethod(lambda value: str(value).replace("\n", "\\n"))

    def render_view(self, view: Trajectory) -> str:
        return "".join(f"toy {self.text(record.label)} {record.passed}\n" for record in view)


@pytest.fixture
def toy() -> object:
    registry.register(ToyFormat(), stdout=True)
    yield
    registry.unregister("toy")


@pytest.mark.usefixtures("isolated_cli", "toy")
def test_a_registered_format_is_printed_by_the_cli_format_option(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_head_checkpoint(run / "e1.pt", collapsing_problem(0.4), step=1)
    result = invoke("track", run, "--format", "toy", "--fail-on", "nc1<=1e9")
    assert result.exit_code == 0, result.output
    assert result.stdout == "toy e1.pt True\n"


@pytest.mark.usefixtures("isolated_cli")
def test_an_unknown_format_is_refused_with_the_choices() -> None:
    result = invoke("measure", "x.pt", "--format", "toy")
    assert result.exit_code == 2
    assert "'toy' is not one of 'table', 'json', 'markdown'" in result.stderr


def _hostile_trajectory() -> Trajectory:
    record = {
        "schema": "nc-audit-report/1",
        "checkpoint": {"path": f"runs/{HOSTILE}", "sha256": HOSTILE, "head": HOSTILE},
        "features": {"path": HOSTILE, "split": HOSTILE, "num_samples": 3, "feature_dim": 2, "num_classes": 2},
        "conventions": {HOSTILE: HOSTILE},
        "metrics": {"nc1": 0.1},
        "targets": {"nc1": 0.0},
        "notes": [HOSTILE],
        "label": HOSTILE,
        "step": 1,
    }
    records = Trajectory.from_records([record, {**record, "step": 2}], "run.jsonl")
    return gate(records, ["nc1<=0.01"], None, 0.0, "all")


def _text_formats() -> list[str]:
    return [name for name in registry.BUILTIN if isinstance(registry.get(name), TextFormat)]


@pytest.mark.parametrize("name", _text_formats())
@pytest.mark.parametrize("single", [False, True], ids=["trajectory", "report"])
def test_no_text_format_lets_an_input_string_forge_structure(name: str, single: bool) -> None:
    trajectory = _hostile_trajectory()
    result = Trajectory.of(trajectory[0].changed(gated=None)) if single else trajectory
    text = registry.text_format(name).render(result)
    lines = text.splitlines()
    assert not any(line.lstrip("|> `").startswith(("## injected", "::error::")) for line in lines), text
    assert "\x1b" not in text and "\r" not in text  # no terminal sequence, no forged CI log line
    if name == "html":
        assert "<script>" not in text  # shown as text, never as markup
    if name in ("markdown", "step-summary"):  # literal only inside a code span, else escaped as \<script>
        outside_code = re.sub(r"`[^`]*`", "", text)
        assert not re.search(r"(?<!\\)<script>", outside_code), outside_code
    if name == "json":
        data = json.loads(text)
        assert (data["label"] if single else data["records"][0]["label"]) == HOSTILE  # kept, only quoted
    if name in ("junit", "html"):
        ET.fromstring(text.split("\n", 1)[1])  # well-formed XML after the declaration or doctype


def test_every_format_of_the_registry_is_one_class_with_a_name() -> None:
    for name in registry.BUILTIN:
        output = registry.get(name)
        assert output.name == name and registry.get(name) is output
    with pytest.raises(Exception, match="unknown output format 'nope'"):
        registry.get("nope")


def test_a_single_report_is_rendered_as_a_report(tmp_path: Path) -> None:
    report = Report.from_dict(
        {"schema": "nc-audit-report/1", "metrics": {"nc1": 0.1}, "label": "x"}, "r.json"
    )
    data = json.loads(registry.text_format("json").render(Trajectory.of(report)))
    assert data["schema"] == "nc-audit-report/1" and "gated" not in data
