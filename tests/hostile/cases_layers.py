"""Issue 22, collapse across depth (``--layers``): layer names from the command line are refused in one
visible line (markup and escape sequences inert), a dump cannot be measured across depth, and the heat
map ``--layers-plot`` is an output that may never replace an input."""

from __future__ import annotations

from pathlib import Path

from generate import SLOW_CASES, Case, case, copy_sample


@case
def case_layers_unknown_markup_name(root: Path) -> Case:
    pt, _ = copy_sample(root)
    evil = "evil\x1b]0;owned\x07[red]x\nPASS nc1"
    return Case(
        "layers_unknown_markup_name", 2,
        "--layers names a module that does not exist, with an OSC escape, BEL, Rich markup and a newline "
        "forging a PASS line: one visible line naming the name and valid layers, before the head is measured",
        [["measure", pt.name, "--data", "digits", "--layers", f"body.1,{evil}", "--no-progress"]],
        "error", culprits=["evil"], fragments=["--layers", "body.4"],
    )  # fmt: skip


@case
def case_layers_of_a_dump(root: Path) -> Case:
    _, h5 = copy_sample(root)
    return Case(
        "layers_of_a_dump", 12,
        "--layers all on a feature dump (it holds the head's input only): refused in one line saying it "
        "needs the checkpoint with --data",
        [["measure", h5.name, "--layers", "all", "--no-progress"]],
        "error", culprits=["--layers"], fragments=["--data"],
    )  # fmt: skip


@case
def case_layers_plot_over_input(root: Path) -> Case:
    a, _ = copy_sample(root, "0001")
    pt, _ = copy_sample(root)
    return Case(
        "layers_plot_over_input", 3,
        "track --layers all --layers-plot naming one of the tracked checkpoints: refused naming the output "
        "and the input before anything is read or written",
        [["track", a.name, pt.name, "--data", "digits", "--layers", "all", "--layers-plot", pt.name,
          "--no-progress"]],
        "error", culprits=[pt.name], fragments=["--layers-plot"],
    )  # fmt: skip


SLOW_CASES["layers_unknown_markup_name"] = "loads torch and the sample model before refusing"
