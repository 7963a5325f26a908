"""The feature cache for ``--task next-token``: one dump per (model, corpus, tokenizer, context, column).

The key covers the folder's digest (config and weights), the corpus's content hash, the tokenizer files
(text corpora), ``--context`` and ``--text-column`` (jsonl), so a change to any of them extracts anew.
Entries are named like the classification cache's (``<sha256[:12]>-<key[:20]>.h5``), so ``nc-audit
cache list|clear`` see them, and so is an interrupted extraction's partial file (``.<name>.*.tmp``),
which the next run with the same inputs resumes. Under torchrun every rank takes part in the
extraction (each its contiguous share of the windows) and all agree on a hit.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch

from nc_audit.core.progress import Tracker
from nc_audit.distributed import DistributedContext
from nc_audit.io.atomic import new_folder
from nc_audit.measure.cache import _remove_entry, default_cache_dir, entry_problem
from nc_audit.models.causal_lm import load_causal_lm
from nc_audit.models.next_token import extract_next_token, extraction_key, resolve_context


def next_token_cache_path(cache_dir: Path, model_sha256: str, key: str) -> Path:
    digest = hashlib.sha256(f"next-token\n{key}".encode()).hexdigest()[:20]
    return cache_dir / f"{model_sha256[:12]}-{digest}.h5"


def cached_next_token_dump(
    folder: Path | str,
    corpus: str,
    *,
    cache_dir: Path | None = None,
    context: int | None = None,
    text_column: str = "text",
    device: str = "cpu",
    tracker: Tracker | None = None,
    on_rebuild: Callable[[str], None] | None = None,
) -> tuple[Path, bool]:
    """The next-token dump of ``corpus`` through the causal LM in ``folder``: (path, hit)."""
    lm = load_causal_lm(folder)
    context = resolve_context(lm, context)
    key = extraction_key(lm, Path(corpus), context, text_column)
    path = next_token_cache_path(
        Path(cache_dir) if cache_dir is not None else default_cache_dir(), lm.sha256, key
    )
    ctx = DistributedContext.from_env(device)
    usable = os.path.lexists(path) and entry_problem(path, ["train"]) is None
    if ctx.distributed:  # a hit only when every rank sees it
        usable = bool(ctx.all_reduce_sum(torch.tensor([0 if usable else 1])).item() == 0)
    if usable:
        try:
            os.utime(path)
        except OSError:
            pass
        return path, True
    if ctx.is_main and os.path.lexists(path):
        problem = entry_problem(path, ["train"]) or "unusable"
        _remove_entry(path, problem)
        if on_rebuild is not None:
            on_rebuild(f"The feature cache entry {path} was damaged ({problem}); it was rebuilt.")
    with new_folder(path.parent, "the feature cache; pass --cache-dir"):
        extract_next_token(
            folder,
            corpus,
            path,
            context=context,
            text_column=text_column,
            device=device,
            tracker=tracker,
            ctx=ctx,
            lm=lm,
        )
    return path, False
