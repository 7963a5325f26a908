"""Shell completion of option values (Typer's mechanism: ``nc-audit --install-completion`` for bash, zsh,
fish or PowerShell; ``--show-completion`` prints the script instead).

The functions here get the word being completed and return ``(value, help)`` pairs: metric names for
``--fail-on``, dataset names and data files for ``--data``.
"""

from __future__ import annotations

import os
from pathlib import Path

from nc_audit.metrics.catalog import METRICS

#: What each built-in dataset is, for the completion menu.
DATASET_HELP = {
    "digits": "scikit-learn's 8x8 digits (10 classes)",
    "gaussian": "Gaussian mixture, e.g. gaussian:classes=10,dim=32",
    "modadd": "a + b mod p, e.g. modadd:p=97",
}
_OPERATOR_CHARACTERS = "<>=!"


def complete_rule(incomplete: str) -> list[tuple[str, str]]:
    """Metric names for a ``--fail-on`` rule while its metric is being typed (``nc`` → nc1, nc1_cdnv, ...)."""
    if any(ch in incomplete for ch in _OPERATOR_CHARACTERS):
        return []  # past the metric: the operator and the number are the user's
    word = incomplete.strip().lower()
    return [(key, info.meaning) for key, info in METRICS.items() if key.startswith(word)]


def complete_dataset(incomplete: str) -> list[tuple[str, str]]:
    """Built-in dataset names, then folders and .npz/.h5 files under the typed path."""
    from nc_audit.io.data.datasets import BUILTIN_DATASETS  # here: the CLI starts without torch
    from nc_audit.io.data.specs import USER_SUFFIXES

    found = [
        (name, DATASET_HELP.get(name, "built-in dataset"))
        for name in BUILTIN_DATASETS
        if name.startswith(incomplete)
    ]
    folder_text, _, prefix = incomplete.rpartition(os.sep)
    folder = Path(folder_text or ".")
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.startswith(prefix) or (entry.name.startswith(".") and not prefix.startswith(".")):
            continue
        shown = entry.name if not folder_text else f"{folder_text}{os.sep}{entry.name}"
        if entry.is_dir():
            found.append((shown + os.sep, "folder"))
        elif entry.suffix.lower() in USER_SUFFIXES:
            found.append((shown, "data file (inputs and labels)"))
    return found
