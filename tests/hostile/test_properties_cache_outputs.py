"""Property (issue 19, class 4): whatever way an output names a file the run reads — the path itself, a
symlink, a hard link, a `..` detour, a symlinked parent folder — and whichever input reaches it — a
plain input, a file of a model folder, the target of an HDF5 external link or virtual-dataset source,
the --model source — the output guard refuses it naming the option, and no input changes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nc_audit.core.errors import InputError
from nc_audit.io.plan.outputs import plan_outputs

OPTIONS = ("--json", "--markdown", "--junit", "--html", "--plot", "--out")
REACHED = ("plain", "folder", "link", "vds", "model")
ALIASES = ("same", "symlink", "hardlink", "dotdot", "folder-symlink")


def _setup(root: Path, reached: str) -> tuple[list[Path], str | None, Path]:
    """(inputs given to the command, --model spec, the file the output will hit)."""
    (root / "m.pt").write_bytes(b"checkpoint")
    if reached == "plain":
        return [root / "m.pt"], None, root / "m.pt"
    if reached == "folder":
        (root / "hf").mkdir()
        (root / "hf" / "config.json").write_text("{}")
        return [root / "hf"], None, root / "hf" / "config.json"
    if reached == "model":
        (root / "zoo.py").write_text("def build(): pass\n")
        return [root / "m.pt"], f"{root / 'zoo.py'}:build", root / "zoo.py"
    (root / "deep").mkdir()
    target = root / "deep" / "target.h5"
    with h5py.File(target, "w") as handle:
        handle["x"] = np.zeros((2, 2), np.float32)
    with h5py.File(root / "dump.h5", "w") as handle:
        if reached == "link":
            handle["features"] = h5py.ExternalLink("deep/target.h5", "/x")
        else:
            layout = h5py.VirtualLayout(shape=(2, 2), dtype=np.float32)
            layout[:] = h5py.VirtualSource("deep/target.h5", "x", shape=(2, 2))
            handle.create_virtual_dataset("features", layout)
    return [root / "dump.h5"], None, target


def _alias(root: Path, victim: Path, how: str) -> Path:
    if how == "same":
        return victim
    if how == "symlink":
        (root / "alias").symlink_to(victim)
        return root / "alias"
    if how == "hardlink":
        os.link(victim, root / "alias")
        return root / "alias"
    if how == "dotdot":
        (root / "side").mkdir()
        return root / "side" / ".." / victim.relative_to(root)
    (root / "linked-folder").symlink_to(victim.parent)
    return root / "linked-folder" / victim.name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(OPTIONS), st.sampled_from(REACHED), st.sampled_from(ALIASES), st.booleans())
def test_no_output_may_resolve_to_a_file_the_run_reads(
    option: str, reached: str, alias: str, second: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        inputs, model, victim = _setup(root, reached)
        output = _alias(root, victim, alias)
        before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}
        outputs = {"--plot": root / "ok.png", option: output} if second else {option: output}
        with pytest.raises(InputError, match=rf"^{option} .*: the same file as the input "):
            plan_outputs(outputs, inputs, model=model)
        assert {p: p.read_bytes() for p in before} == before
