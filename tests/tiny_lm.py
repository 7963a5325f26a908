"""Tiny causal language models for the next-token tests, built by scripts/make_tiny_lm.py (no download)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@cache
def builder() -> ModuleType:
    """scripts/make_tiny_lm.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_tiny_lm", ROOT / "scripts" / "make_tiny_lm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(out: Path, arch: str = "gpt2", **options: object) -> tuple[Path, Path]:
    """(model folder, corpus.txt) of a tiny model in ``out``; small defaults, fast on 2 cores."""
    settings = {"vocab": 300, "embd": 32, "layers": 2, "documents": 40, "positions": 64} | options
    return builder().build(out, arch, **settings)


def write_tokens(path: Path, documents: list[list[int]]) -> Path:
    """A tokens.npy stream: the documents' ids, -1 between documents."""
    stream: list[int] = []
    for index, document in enumerate(documents):
        stream += ([-1] if index else []) + document
    np.save(path, np.asarray(stream, dtype=np.int64))
    return path
