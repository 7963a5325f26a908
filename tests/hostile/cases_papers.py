"""Issue 22: the regulariser study's records, read back by `study regularizer --resume`, are checked like
every study's. Generated (no binaries); see the README's "Regulariser study records" table."""

from __future__ import annotations

import re
from pathlib import Path

from generate import SLOW_CASES, Case, case, run_cli


def _tampered_regularizer(root: Path, name: str, replace: tuple[str, str], field: str) -> Case:
    out = root / "study"
    args = ["study", "regularizer", "--quick", "--weights", "1", "--out", str(out), "--no-progress"]
    done = run_cli(args, cwd=root)
    if done.returncode != 0:
        return Case(name, 5, "", [], "error", skip=f"the priming study failed: {done.stderr[-300:]}")
    runs = out / "runs.jsonl"
    line = runs.read_text().splitlines()[0]
    pattern, value = replace
    runs.write_text(re.sub(pattern, value, line, count=1) + "\n")
    return Case(
        name, 5,
        f"study regularizer --resume over a runs.jsonl whose record was edited ({value}): refused naming the "
        f"file, line 1 and the field {field}",
        [[*args, "--resume"]],
        "error", culprits=[runs.name], fragments=["line 1", field], timeout=120,
        outputs=["study/RESULTS.md", "study/regularizer.png"],
    )  # fmt: skip


@case
def case_papers_regularizer_missing_head_entropy(root: Path) -> Case:
    return _tampered_regularizer(
        root,
        "papers_regularizer_missing_head_entropy",
        (r'"h_head": [0-9.e-]+, ', ""),
        "train.metrics.h_head",
    )


@case
def case_papers_regularizer_negative_lambda(root: Path) -> Case:
    return _tampered_regularizer(
        root, "papers_regularizer_negative_lambda", (r'"lam": [0-9.e-]+', '"lam": -1.0'), "lam"
    )


SLOW_CASES["papers_regularizer_missing_head_entropy"] = (
    "primes a quick regularizer study (one run, about 3 s)"
)
SLOW_CASES["papers_regularizer_negative_lambda"] = "primes a quick regularizer study (one run, about 3 s)"
