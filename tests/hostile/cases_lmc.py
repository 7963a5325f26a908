"""Issue 22: what `study lmc --resume` reads back — its runs.jsonl records (each pair's path) and the networks
it keeps in DIR/runs (a parent's run state, the children). Generated (no binaries); see the README's
"Linear-mode-connectivity study" table."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from generate import SLOW_CASES, Case, case
from study_resume import RunsCode, primed_study

#: What a resumed quick study may write: its records, page, plot and the networks it trains again.
_OUTPUTS = ["study/runs.jsonl", "study/results.json", "study/RESULTS.md", "study/lmc.png",
            "study/runs/child-*.pt", "study/runs/independent-*.pt"]  # fmt: skip


@case
def case_lmc_parent_state_pickle(root: Path) -> Case:
    name = "lmc_parent_state_pickle"
    primed = primed_study(root, "lmc", name)
    if isinstance(primed, Case):
        return primed
    args, out = primed
    # a kill after the parent at k=0 was saved, before its children: the resume reads the parent's state
    (out / "runs.jsonl").write_text("")
    for child in (out / "runs").glob("child-seed_0-k_0-*.pt"):
        child.unlink()
    parent = out / "runs" / "parent-seed_0-epoch_0.pt"
    marker = root / "executed"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "optimizer": RunsCode(marker)}, parent)
    return Case(
        name, 2,
        "study lmc --resume whose saved parent state (runs/parent-seed_0-epoch_0.pt) holds a pickle that runs "
        "`touch executed`: refused naming the file, nothing executed",
        [[*args, "--resume"]],
        "error", culprits=[parent.name], fragments=["refused to unpickle"], forbidden=["Traceback"], timeout=120, outputs=_OUTPUTS,
    )  # fmt: skip


@case
def case_lmc_record_alpha_outside(root: Path) -> Case:
    name = "lmc_record_alpha_outside"
    primed = primed_study(root, "lmc", name)
    if isinstance(primed, Case):
        return primed
    args, out = primed
    runs = out / "runs.jsonl"
    line = runs.read_text().splitlines()[0]
    runs.write_text(re.sub(r'"alpha": 1\.0', '"alpha": 7.0', line, count=1) + "\n")
    return Case(
        name, 5,
        "study lmc --resume over a runs.jsonl whose record's path has α = 7: refused naming the file, line 1 "
        "and the field",
        [[*args, "--resume"]],
        "error", culprits=[runs.name], fragments=["line 1", "alpha"], timeout=120, outputs=_OUTPUTS,
    )  # fmt: skip


SLOW_CASES["lmc_parent_state_pickle"] = "primes a quick lmc study (three pairs, about 4 s)"
SLOW_CASES["lmc_record_alpha_outside"] = "primes a quick lmc study (three pairs, about 4 s)"
