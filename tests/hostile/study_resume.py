"""What the study cases share (cases_lmc.py, cases_prune_seeds.py): a finished quick study to resume, and an
object whose unpickling runs code. Not a case module (no ``cases_`` prefix): it registers nothing."""

from __future__ import annotations

import os
from pathlib import Path

from generate import Case, run_cli


def primed_study(root: Path, study: str, name: str) -> tuple[list[str], Path] | Case:
    """A finished ``nc-audit study STUDY --quick`` in root/study (its arguments and folder), or the case
    ``name`` skipped when that priming run failed."""
    out = root / "study"
    args = ["study", study, "--quick", "--out", str(out), "--no-progress"]
    done = run_cli(args, cwd=root)
    if done.returncode != 0:
        return Case(name, 5, "", [], "error", skip=f"the priming study failed: {done.stderr[-300:]}")
    return args, out


class RunsCode:
    """Unpickling this runs `touch MARKER` (what torch.load(weights_only=False) would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)
