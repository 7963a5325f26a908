"""A Monitor takes its gates from ``fail_on``/``baseline`` or, given neither, from ``[tool.nc-audit]`` of
the nearest pyproject.toml, and then says so once (issue 21, item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import make_random_problem

from nc_audit.core.errors import InputError
from nc_audit.measurement.monitor import Monitor


def test_a_monitor_says_once_which_pyproject_gates_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.nc-audit]\nfail-on = ["nc1<=1e-9", "nc4<=1"]\n')
    monkeypatch.chdir(project)
    p = make_random_problem(seed=1)
    H, y, W, b = (torch.from_numpy(a) for a in (p.features, p.labels, p.W, p.b))
    monitor = Monitor(project / "nc.jsonl", every=1)
    records = [monitor.log(step, H, y, W, b) for step in range(3)]
    err = capsys.readouterr().err
    assert err.count("gates from pyproject.toml:") == 1
    assert f"gates from pyproject.toml: nc1 <= 1e-09, nc4 <= 1 ({project / 'pyproject.toml'})" in err
    for record in records:
        assert record is not None and [c["passed"] for c in record["checks"]] == [False, True]
        assert record["passed"] is False
    # gates given in code win, and are not announced; fail_on=[] turns the project's off
    assert Monitor(project / "b.jsonl", fail_on=["nc4<=1"]).log(0, H, y, W, b)["passed"] is True
    assert Monitor(project / "c.jsonl", fail_on=[]).log(0, H, y, W, b)["checks"] == []
    assert capsys.readouterr().err == ""
    # without gates in the project nothing is said
    (project / "pyproject.toml").write_text("[tool.other]\nx = 1\n")
    assert Monitor(project / "d.jsonl").log(0, H, y, W, b)["checks"] == []
    assert capsys.readouterr().err == ""


def test_a_baseline_from_the_project_gates_each_record_and_must_check_something(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    p = make_random_problem(seed=2)
    H, y, W, b = (torch.from_numpy(a) for a in (p.features, p.labels, p.W, p.b))
    first = Monitor(tmp_path / "first.jsonl", fail_on=[]).log(0, H, y, W, b)
    (tmp_path / "base.json").write_text(json.dumps(first))
    (tmp_path / "pyproject.toml").write_text('[tool.nc-audit]\nbaseline = "base.json"\ntolerance = 0.01\n')
    monkeypatch.chdir(tmp_path)
    record = Monitor(tmp_path / "nc.jsonl").log(0, H, y, W, b)
    assert "gates from pyproject.toml: baseline " in capsys.readouterr().err
    assert record is not None and record["checks"] and record["passed"] is True
    (tmp_path / "base.json").write_text(json.dumps({**first, "metrics": {"loss": 1.0}}))
    with pytest.raises(InputError, match="shares no metric value"):
        Monitor(tmp_path / "other.jsonl").log(0, H, y, W, b)


def test_a_bad_project_gate_names_the_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.nc-audit]\nfail-on = ["nc9<=1"]\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"pyproject\.toml: \[tool\.nc-audit\]: unknown metric 'nc9'"):
        Monitor(tmp_path / "nc.jsonl")
    with pytest.raises(InputError, match=r"^unknown metric 'nc9'"):  # given in code: no file to name
        Monitor(tmp_path / "nc.jsonl", fail_on=["nc9<=1"])
