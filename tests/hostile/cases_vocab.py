"""Hostile inputs of ``track --task next-token`` (issue 23): the model folders a trajectory takes.

A Trainer's ``output_dir`` is a folder of model folders; one whose ``config.json`` is a link to a file
outside, or a checkpoint folder that is itself a link elsewhere, must not be taken for a model: the run
refuses the folder with one line naming it, and no byte outside the case's folder is read.
"""

from __future__ import annotations

from pathlib import Path

from cases_nexttoken import text_corpus
from generate import Case, case


def track_next_token(run: Path, corpus: Path, root: Path) -> list[str]:
    return ["track", str(run), "--data", str(corpus), "--task", "next-token", "--context", "32",
            "--cache-dir", str(root / "cache"), "--no-progress"]  # fmt: skip


@case
def case_lm_track_linked_checkpoints(root: Path) -> Case:
    run = root / "output_dir"
    (run / "checkpoint-1").mkdir(parents=True)
    (run / "checkpoint-1" / "config.json").symlink_to("/etc/hostname")  # a config that is a link outside
    (run / "checkpoint-2").symlink_to("/etc")  # a checkpoint folder that is a link outside
    corpus = text_corpus(root)
    return Case(
        "lm_track_linked_checkpoints", 1,
        "track --task next-token on an output_dir whose checkpoint-1/config.json links to /etc/hostname and "
        "whose checkpoint-2 links to /etc: neither is taken for a model; one line naming the folder",
        [track_next_token(run, corpus, root)],
        "error", culprits=[run.name], fragments=["causal language model folder"], outputs=["cache"],
    )  # fmt: skip
