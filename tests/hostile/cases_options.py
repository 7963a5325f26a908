"""Issue 20: a project's ``[tool.nc-audit]`` is read by every command that has the option (``device``
for measure, track, extract, finetune, interpolate and prune), so a bad value there is refused by each
of them with one line naming the pyproject.toml. See the README's "Project defaults" table."""

from __future__ import annotations

from pathlib import Path

from generate import SLOW_CASES, Case, case, copy_sample


@case
def case_options_project_device_every_command(root: Path) -> Case:
    a, _ = copy_sample(root, "0001")
    pt, h5 = copy_sample(root)
    (root / "pyproject.toml").write_text('[tool.nc-audit]\ndevice = "tpu"\n')
    quiet = "--no-progress"
    return Case(
        "options_project_device_every_command", 9,
        "a pyproject.toml whose [tool.nc-audit] device is 'tpu' (extract, finetune, interpolate and prune "
        "never read it before): every command with --device reads it and refuses it in one line naming the "
        "file and the key",
        [["measure", pt.name, "--features", h5.name, quiet],
         ["track", a.name, pt.name, quiet],
         ["extract", pt.name, "--data", "digits", "--out", "out.h5", quiet],
         ["finetune", pt.name, "--data", "digits", "--cma-weight", "0.1", "--epochs", "1", "--out", "ft", quiet],
         ["interpolate", a.name, pt.name, "--data", "digits", "--steps", "2", quiet],
         ["prune", pt.name, "--data", "digits", "--sparsities", "0", "--out", "pruned", quiet]],
        "error", culprits=["pyproject.toml"], fragments=["device", "tpu"],
    )  # fmt: skip


SLOW_CASES["options_project_device_every_command"] = "six commands started one after another"
