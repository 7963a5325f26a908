"""Output planning (nc_audit/io/plan/outputs.py): an output never replaces an input or another output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nc_audit.core.errors import InputError
from nc_audit.io.plan.outputs import plan_outputs


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    dump, checkpoint = tmp_path / "f.h5", tmp_path / "m.pt"
    dump.write_bytes(b"dump")
    checkpoint.write_bytes(b"checkpoint")
    (tmp_path / "alias.h5").symlink_to(dump.name)
    os.link(dump, tmp_path / "hard.h5")
    return {
        "dump": dump,
        "checkpoint": checkpoint,
        "alias": tmp_path / "alias.h5",
        "hard": tmp_path / "hard.h5",
    }


@pytest.mark.parametrize("name", ["dump", "alias", "hard"])
def test_an_output_onto_an_input_is_refused_naming_the_option_and_both_files(
    files: dict[str, Path], name: str
) -> None:
    with pytest.raises(InputError, match=rf"--json .*{files[name].name}: the same file as the input .*f\.h5"):
        plan_outputs({"--json": files[name]}, [files["checkpoint"], files["dump"]])


def test_an_output_through_a_relative_path_is_recognised(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(files["dump"].parent)
    Path("sub").mkdir()
    with pytest.raises(InputError, match=r"the same file as the input"):
        plan_outputs({"--markdown": Path("sub/../m.pt")}, [files["checkpoint"]])


def test_two_outputs_on_one_path_are_refused_but_streams_may_be_shared(files: dict[str, Path]) -> None:
    out = files["dump"].parent / "report.out"
    with pytest.raises(InputError, match=r"--junit .*report\.out: the same file as --json"):
        plan_outputs({"--json": out, "--junit": out})
    fifo = files["dump"].parent / "pipe"
    os.mkfifo(fifo)
    assert plan_outputs({"--json": fifo, "--markdown": fifo}) == {"--json": fifo, "--markdown": fifo}


@pytest.mark.parametrize("raw", ["", "."])
def test_an_empty_path_or_a_folder_is_refused(raw: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"--json '.': an empty path"):
        plan_outputs({"--json": Path(raw)})
    with pytest.raises(InputError, match=r"a folder"):
        plan_outputs({"--json": tmp_path})


def test_fresh_outputs_pass_and_missing_options_are_skipped(files: dict[str, Path]) -> None:
    out = files["dump"].parent / "report.json"
    assert plan_outputs({"--json": out, "--junit": None}, [files["dump"], None]) == {"--json": out}
