"""Issue 22: what `study prune --resume` reads back — its runs.jsonl records and the networks it keeps in
DIR/runs (each seed's trained network). Generated (no binaries); see the README's "Pruning study over
seeds" table."""

from __future__ import annotations

from pathlib import Path

import torch
from generate import SLOW_CASES, Case, case
from study_resume import RunsCode, primed_study

#: What a resumed quick study may write: its records, page, plot and the networks it prunes again.
_OUTPUTS = ["study/runs.jsonl", "study/results.json", "study/RESULTS.md", "study/pruning_seeds.png",
            "study/runs/seed_0/sparsity_*.pt"]  # fmt: skip


@case
def case_prune_seeds_network_pickle(root: Path) -> Case:
    name = "prune_seeds_network_pickle"
    primed = primed_study(root, "prune", name)
    if isinstance(primed, Case):
        return primed
    args, out = primed
    # a kill after seed 0 was trained, before its first record: the resume prunes the kept network
    (out / "runs.jsonl").write_text("")
    network = out / "runs" / "seed_0.pt"
    marker = root / "executed"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "architecture": RunsCode(marker)}, network)
    return Case(
        name, 2,
        "study prune --resume whose kept network (runs/seed_0.pt) holds a pickle that runs `touch executed`: "
        "refused naming the file, nothing executed",
        [[*args, "--resume"]],
        "error", culprits=[network.name], fragments=["refused to unpickle"], forbidden=["Traceback"], timeout=120,
        outputs=_OUTPUTS,
    )  # fmt: skip


@case
def case_prune_seeds_network_replaced(root: Path) -> Case:
    name = "prune_seeds_network_replaced"
    primed = primed_study(root, "prune", name)
    if isinstance(primed, Case):
        return primed
    args, out = primed
    network = out / "runs" / "seed_0.pt"
    network.write_bytes((out / "runs" / "seed_0" / "sparsity_0.800.pt").read_bytes())  # a valid network
    return Case(
        name, 5,
        "study prune --resume whose kept runs/seed_0.pt is another valid network than the one its records were "
        "measured on: refused naming the file (its SHA-256), nothing reported as measured",
        [[*args, "--resume"]],
        "error", culprits=[network.name], fragments=["SHA-256"], forbidden=["Traceback"], timeout=120,
        outputs=_OUTPUTS,
    )  # fmt: skip


SLOW_CASES["prune_seeds_network_pickle"] = "primes a quick prune study (one 2-epoch training, about 3 s)"
SLOW_CASES["prune_seeds_network_replaced"] = "primes a quick prune study (one 2-epoch training, about 3 s)"
