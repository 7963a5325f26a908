"""Toy training runs and CLI helpers shared by the trajectory and gate tests.

The collapsing toy run: C classes in R^D, fixed class means, within-class noise shrinking with training,
so NC1 and CDNV move as noise² while every other metric stays put.
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import h5py
import numpy as np
import torch
from reference import Problem
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.measurement.monitor import Monitor, read_trajectory_jsonl

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_checkpoints" / "digits-mlp"
#: The JUnit schema CI report readers accept (written for nc-audit after the Jenkins/Ant structure).
JUNIT_XSD = ROOT / "tests" / "report" / "junit.xsd"
#: The collapsing toy run: C classes in R^D, fixed class means, within-class noise shrinking with training.
C, D, PER_CLASS = 5, 8, 40


def invoke(command: str, *args: str | Path, env: dict[str, str] | None = None) -> Result:
    """Run `nc-audit COMMAND ARGS` in-process on the CPU, without a progress bar."""
    argv = [command, *map(str, args), "--no-progress", "--device", "cpu"]
    return CliRunner().invoke(app, argv, env=env)


def junit_suites(xml: str | Path) -> list[ET.Element]:
    """Validate JUnit XML against tests/report/junit.xsd (xmlschema, a real XSD validator), check that
    every count agrees with the test cases, and return the <testsuite> elements."""
    import xmlschema

    text = xml.read_text(encoding="utf-8") if isinstance(xml, Path) else xml
    xmlschema.XMLSchema(JUNIT_XSD).validate(text)
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    for element in (root, *suites):
        cases = element.iter("testcase")
        cases = list(cases)
        assert int(element.get("tests")) == len(cases)
        assert int(element.get("failures")) == sum(case.find("failure") is not None for case in cases)
    return suites


def junit_cases(xml: str | Path) -> list[ET.Element]:
    """Every <testcase> of a validated JUnit file, in order."""
    return [case for suite in junit_suites(xml) for case in suite.findall("testcase")]


def assert_bad_input(result: Result, *fragments: str) -> str:
    """Exit 2 with exactly one stderr line 'nc-audit: error: ...' holding each fragment; no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got {result.stderr!r}"
    line = lines[0]
    assert line.startswith("nc-audit: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    assert result.stdout == ""
    return line


def collapsing_problem(noise: float, num_classes: int = C, feature_dim: int = D, seed: int = 0) -> Problem:
    """Features = class mean + noise·Z with Z centred within each class, so the class means do not depend
    on ``noise``: NC1 and CDNV grow as noise², every other metric stays put. The head is the nearest-mean
    classifier (w_c = μ_c, b_c = −‖μ_c‖²/2), so NC4 = 0 at every noise level."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), PER_CLASS)  # (N,)
    means = 3.0 * rng.normal(size=(num_classes, feature_dim)) + 2.0  # (C, d)
    Z = rng.normal(size=(labels.size, feature_dim))  # (N, d)
    for c in range(num_classes):
        Z[labels == c] -= Z[labels == c].mean(axis=0)
    W = means.copy()  # (C, d)
    b = -0.5 * (means * means).sum(axis=1)  # (C,)
    return Problem(means[labels] + noise * Z, labels.astype(np.int64), W, b)


def write_features(path: Path, problem: Problem) -> Path:
    """The minimal dump a user writes with h5py: /features and /labels only."""
    with h5py.File(path, "w") as handle:
        handle["features"] = problem.features
        handle["labels"] = problem.labels
    return path


def write_head_checkpoint(path: Path, problem: Problem, step: int | None) -> Path:
    """A checkpoint holding only the head 'fc' (+ the step when given), its feature dump beside it."""
    state = {"fc.weight": torch.from_numpy(problem.W.copy()), "fc.bias": torch.from_numpy(problem.b.copy())}
    save_checkpoint(path, state, None, meta=None if step is None else {"step": step})
    write_features(path.with_suffix(".h5"), problem)
    return path


def write_run(folder: Path, noise_by_name: dict[str, float], steps: dict[str, int] | None = None) -> Path:
    """A folder of collapsing-run checkpoints NAME.pt + NAME.h5 (steps optional)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, noise in noise_by_name.items():
        step = None if steps is None else steps[name]
        write_head_checkpoint(folder / f"{name}.pt", collapsing_problem(noise), step)
    return folder


def sample_checkpoints() -> list[Path]:
    """The shipped checkpoints that have their dump, in the order of the epoch number in their name."""
    found = [p for p in SAMPLES.glob("epoch_*.pt") if p.with_suffix(".h5").is_file()]
    assert len(found) >= 3, f"expected the sample trajectory in {SAMPLES}; run `make samples`"
    return sorted(found, key=lambda p: int(re.search(r"(\d+)", p.stem).group(1)))


def write_monitor_file(path: Path, steps: tuple[int, ...] = (0, 10, 20)) -> list[dict]:
    """A monitor's .jsonl: one nc-audit-report/1 record per measured step, noise shrinking with the step."""
    monitor = Monitor(path, every=10, label="toy-run")
    for index, step in enumerate(steps):
        problem = collapsing_problem(1.0 / (index + 1))
        monitor.log(
            step,
            torch.from_numpy(problem.features),
            torch.from_numpy(problem.labels),
            torch.from_numpy(problem.W),
            torch.from_numpy(problem.b),
        )
    return read_trajectory_jsonl(path)


class Page(HTMLParser):
    """Every tag with its attributes, the text of every table row, and all text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def row(self, first: str) -> list[str]:
        return next(row for row in self.rows if row and row[0] == first)


def parse_html(text: str) -> Page:
    """Parse an nc-audit HTML report with html.parser and, for well-formedness, xml.etree; check that it is
    self-contained: no script, no linked resource, every image an inline PNG."""
    ET.fromstring(text.split("\n", 1)[1])  # well-formed (after the doctype line)
    page = Page(text)
    assert not page.named("script") and not page.named("link") and not page.named("iframe")
    for attrs in page.named("img"):
        source = attrs["src"] or ""
        assert source.startswith("data:image/png;base64,"), "an image that is not inline"
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    return page
