"""The feature cache for ``--task next-token``: one dump per (model, corpus, tokenizer, context, column).

The key covers the folder's digest (config and weights), the corpus's content hash, the tokenizer files
(text corpora), ``--context`` and ``--text-column`` (jsonl), so a change to any of them extracts anew.
Entries are named like the classification cache's (``<sha256[:12]>-<key[:20]>.h5``), so ``nc-audit
cache list|clear`` see them, and so is an interrupted extraction's partial file (``.<name>.*.tmp``),
which the next run with the same inputs resumes. An entry is reused only when proven, as every cache
entry is (:func:`nc_audit.measurement.cache.proven_entry`: signed by this user's key). Under torchrun every rank takes part in the
extraction (each its contiguous share of the windows) and all agree on a hit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch

from nc_audit.core.progress import Tracker
from nc_audit.distributed import DistributedContext
from nc_audit.io.guards.atomic import new_folder
from nc_audit.measurement.cache import entry_fields, proven_entry
from nc_audit.models.causal_lm import load_causal_lm
from nc_audit.models.next_token import extract_next_token, extraction_key, next_token_dataset, resolve_context


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
    dataset = next_token_dataset(Path(corpus))

    def fields_of(where: Path) -> tuple[Path, dict[str, str]]:
        path = next_token_cache_path(where, lm.sha256, key)
        return path, entry_fields(path, lm.sha256, dataset, ["train"])

    ctx = DistributedContext.from_env(device)
    # proven like every cache entry (measure.cache.proven_entry): a planted entry is never reused
    entry = proven_entry(cache_dir, ["train"], fields_of, on_rebuild if ctx.is_main else None)
    hit = entry.hit
    if ctx.distributed:  # a hit only when every rank sees it
        hit = bool(ctx.all_reduce_sum(torch.tensor([0 if hit else 1])).item() == 0)
    path = entry.path
    if hit:
        return path, True
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
    if ctx.is_main:
        entry.sign()
    ctx.barrier()  # every rank returns once the entry is proven
    return path, False
