"""`measure` and `track` say once on stderr when their gates come from ``[tool.nc-audit]`` of a
pyproject.toml rather than from flags — the same line a Monitor prints (MonitorGates.announce)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runs import collapsing_problem, invoke, write_head_checkpoint

pytestmark = pytest.mark.usefixtures("isolated_cli")
LINE = "gates from pyproject.toml:"


def _project(folder: Path, **settings: Any) -> Path:
    path = folder / "pyproject.toml"
    lines = ["[tool.nc-audit]", *(f"{key} = {json.dumps(value)}" for key, value in settings.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return write_head_checkpoint(tmp_path / "run.pt", collapsing_problem(0.4), step=10)


@pytest.mark.parametrize("command", ["measure", "track"])
def test_project_rules_are_announced_once_with_the_file(
    command: str, checkpoint: Path, tmp_path: Path
) -> None:
    config = _project(tmp_path, **{"fail-on": ["nc1<=1e9", "nc4 <= 1"]})
    args = [checkpoint, "--features", checkpoint.with_suffix(".h5")] if command == "measure" else [checkpoint]

    result = invoke(command, *args)

    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith(LINE)]
    assert lines == [f"{LINE} nc1 <= 1000000000, nc4 <= 1 ({config.resolve()})"]
    assert LINE not in result.stdout  # machine output stays clean


def test_rules_from_a_flag_are_not_announced_but_a_project_baseline_is(
    checkpoint: Path, tmp_path: Path
) -> None:
    features = checkpoint.with_suffix(".h5")
    baseline = tmp_path / "base.json"
    assert invoke("measure", checkpoint, "--features", features, "--json", baseline).exit_code == 0
    _project(tmp_path, **{"fail-on": ["nc1<=0"], "baseline": "base.json", "tolerance": 1e6})

    result = invoke("measure", checkpoint, "--features", features, "--fail-on", "nc1<=1e9")

    assert result.exit_code == 0, result.output
    announced = [line for line in result.stderr.splitlines() if line.startswith(LINE)]
    assert len(announced) == 1 and "nc1" not in announced[0]  # the flag's rule is not the project's
    assert announced[0].startswith(f"{LINE} baseline ") and "base.json (tolerance 1000000.0)" in announced[0]


def test_no_line_without_project_gates(checkpoint: Path, tmp_path: Path) -> None:
    _project(tmp_path, device="cpu")
    result = invoke("measure", checkpoint, "--features", checkpoint.with_suffix(".h5"))
    assert result.exit_code == 0, result.output
    assert LINE not in result.output
