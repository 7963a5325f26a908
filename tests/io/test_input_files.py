"""Every file a run reads through one input (nc_audit/io/plan/input_files.py), and the output guard over them
(nc_audit/io/plan/outputs.py): model folder files, --model sources, HDF5 link / VDS / external storage targets."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from nc_audit.core.errors import InputError
from nc_audit.io.plan.input_files import expand_inputs, model_source_files, reached_files
from nc_audit.io.plan.outputs import plan_outputs

ARRAY = np.arange(12, dtype=np.float32).reshape(4, 3)


def _target(path: Path) -> Path:
    with h5py.File(path, "w") as handle:
        handle["x"] = ARRAY
    return path


def _names(paths: list[Path], base: Path) -> set[str]:
    return {os.path.relpath(os.path.realpath(p), os.path.realpath(base)) for p in paths if os.path.exists(p)}


def test_external_links_vds_sources_and_raw_storage_are_followed_through_chains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _target(tmp_path / "leaf.h5")
    with h5py.File(tmp_path / "middle.h5", "w") as handle:  # a VDS whose source is leaf.h5
        layout = h5py.VirtualLayout(shape=ARRAY.shape, dtype=ARRAY.dtype)
        layout[:] = h5py.VirtualSource("leaf.h5", "x", shape=ARRAY.shape)
        handle.create_virtual_dataset("v", layout)
    (tmp_path / "raw.bin").write_bytes(ARRAY.tobytes())
    with h5py.File(tmp_path / "top.h5", "w") as handle:
        handle["group/link"] = h5py.ExternalLink("middle.h5", "/v")
        handle.create_dataset(
            "raw", shape=ARRAY.shape, dtype=ARRAY.dtype, external=[("raw.bin", 0, ARRAY.nbytes)]
        )
    found = _names(reached_files(tmp_path / "top.h5"), tmp_path)
    assert found == {"top.h5", "middle.h5", "leaf.h5", "raw.bin"}


def test_a_target_under_an_hdf5_prefix_folder_is_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HDF5 also looks for a relative link target under HDF5_EXT_PREFIX: that file is an input too."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _target(elsewhere / "leaf.h5")
    (tmp_path / "dump").mkdir()
    with h5py.File(tmp_path / "dump" / "top.h5", "w") as handle:
        handle["x"] = h5py.ExternalLink("leaf.h5", "/x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HDF5_EXT_PREFIX", str(elsewhere))
    reached = {os.path.realpath(path) for path in reached_files(tmp_path / "dump" / "top.h5")}
    assert os.path.realpath(elsewhere / "leaf.h5") in reached


def test_a_link_cycle_ends_and_a_file_that_is_not_hdf5_is_itself(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        handle["to_b"] = h5py.ExternalLink("b.h5", "/")
    with h5py.File(tmp_path / "b.h5", "w") as handle:
        handle["to_a"] = h5py.ExternalLink("a.h5", "/")
    assert _names(reached_files(tmp_path / "a.h5"), tmp_path) == {"a.h5", "b.h5"}
    (tmp_path / "fake.h5").write_bytes(b"not hdf5 at all")
    assert reached_files(tmp_path / "fake.h5") == [tmp_path / "fake.h5"]


def test_a_folder_is_every_file_in_it(tmp_path: Path) -> None:
    hf = tmp_path / "hf"
    (hf / "sub").mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "sub/tokenizer.json"):
        (hf / name).write_text("{}")
    assert _names(expand_inputs([hf]), tmp_path) == {
        "hf",
        "hf/config.json",
        "hf/model.safetensors",
        "hf/sub/tokenizer.json",
    }


def test_model_specs_name_their_source_files() -> None:
    assert model_source_files("zoo.py:build") == [Path("zoo.py")]
    assert model_source_files("lib/zoo.py:build") == [Path("lib/zoo.py")]
    assert model_source_files("pkg.nets:build") == [Path("pkg/nets.py"), Path("pkg/nets/__init__.py")]
    assert model_source_files(None) == []


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    (hf / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "alias").symlink_to("hf")
    target = _target(tmp_path / "target.h5")
    with h5py.File(tmp_path / "dump.h5", "w") as handle:
        handle["features"] = h5py.ExternalLink("target.h5", "/x")
    os.link(target, tmp_path / "hard.h5")
    (tmp_path / "zoo.py").write_text("def build(): pass\n")
    (tmp_path / "m.pt").write_bytes(b"checkpoint")
    return {"hf": hf, "dump": tmp_path / "dump.h5", "target": target, "m": tmp_path / "m.pt"}


@pytest.mark.parametrize(
    ("option", "output", "named"),
    [
        ("--json", "hf/config.json", "input folder"),
        ("--markdown", "hf/model.safetensors", "input folder"),
        ("--html", "alias/config.json", "input folder"),
        ("--json", "hf/../hf/config.json", "input folder"),
        ("--junit", "target.h5", "HDF5 links of"),
        ("--plot", "hard.h5", "HDF5 links of"),
        ("--out", "zoo.py", "--model source"),
    ],
)
def test_an_output_over_any_file_the_run_reads_is_refused_naming_both(
    inputs: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    output: str,
    named: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    with pytest.raises(InputError, match=rf"^{option} {output}: the same file as the input .*{named}"):
        plan_outputs(
            {option: Path(output)}, [inputs["hf"], inputs["dump"], inputs["m"]], model="zoo.py:build"
        )
    assert {p: p.read_bytes() for p in before} == before


def test_the_step_summary_is_an_output_when_the_command_appends_to_it(
    inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(inputs["m"]))
    with pytest.raises(
        InputError, match=r"^GITHUB_STEP_SUMMARY .*m\.pt: the same file as the input .*appending"
    ):
        plan_outputs({}, [inputs["m"]], step_summary=True)
    assert plan_outputs({}, [inputs["m"]]) == {}  # a command that does not append is not refused
    summary = inputs["m"].parent / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    with pytest.raises(InputError, match=r"the same file as GITHUB_STEP_SUMMARY|the same file as --markdown"):
        plan_outputs({"--markdown": summary}, [inputs["m"]], step_summary=True)


def test_new_files_in_an_input_folder_are_allowed(inputs: dict[str, Path]) -> None:
    out = inputs["hf"] / "report.json"
    assert plan_outputs({"--json": out}, [inputs["hf"]]) == {"--json": out}
