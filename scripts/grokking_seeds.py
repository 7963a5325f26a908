"""Grokking steps over seeds: `python scripts/grokking_seeds.py DIR...` prints a Markdown page.

Each DIR is a finished `nc-audit demo grokking` run folder (its trajectory.json). `make grokking-seeds`
runs the transformer demo with seeds 0-2 and writes benchmarks/GROKKING_SEEDS.md with this.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nc_audit.core.errors import InputError
from nc_audit.report.grokking_seeds import read_run, seeds_markdown


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python scripts/grokking_seeds.py DIR [DIR...]", file=sys.stderr)
        return 2
    try:
        runs = [read_run(Path(folder)) for folder in argv]
    except InputError as error:
        print(f"grokking_seeds: error: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(seeds_markdown(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
