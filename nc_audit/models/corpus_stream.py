"""The corpus's token stream for one extraction: tokenized once, whatever the number of ranks.

One process tokenizes into a private temporary folder. Under ``torchrun`` only rank 0 tokenizes, into a
folder beside the dump being written (``.<dump>.tokens<world>.tmp``: the dump's folder is already the
one every rank writes its part to, so it is shared by them); the other ranks wait for it (one
all-reduce, which also carries the token count) and memory-map the same files read-only. A failure on
rank 0 (an id outside the vocabulary, an unreadable corpus) fails every rank instead of leaving them
waiting. The folder is removed once every rank is done with it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from nc_audit.core.errors import InputError
from nc_audit.distributed import DistributedContext
from nc_audit.io.data.token_stream import TokenStream

Tokenize = Callable[[Path], TokenStream]


def shared_folder(target: Path, world_size: int) -> Path:
    """Where rank 0 writes the token stream of the dump ``target``."""
    return target.parent / f".{target.name}.tokens{world_size}.tmp"


def _fresh(folder: Path) -> None:
    """An empty folder at ``folder``, whatever a crashed run left there (a link is removed, not followed)."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(mode=0o700)


@contextmanager
def corpus_stream(
    tokenize: Tokenize, corpus: Path, target: Path, ctx: DistributedContext
) -> Iterator[TokenStream]:
    """The token stream ``tokenize(folder)`` writes, made once (see the module docstring); the body
    must hold no collective operation (the ranks meet again on leaving it)."""
    if not ctx.distributed:
        with tempfile.TemporaryDirectory(prefix="nc-audit-tokens-") as work:
            yield tokenize(Path(work))
        return
    folder = shared_folder(target, ctx.world_size)
    count, error = -1, None
    if ctx.is_main:
        try:
            _fresh(folder)
            count = tokenize(folder).num_tokens
        except Exception as caught:  # every rank must learn of it, or they would wait forever
            error = caught
    shared = ctx.all_reduce_sum(torch.tensor([count if ctx.is_main else 0], dtype=torch.int64))
    total = int(shared.item())
    try:
        if error is not None:
            raise error
        if total < 0:
            raise InputError(f"{corpus}: rank 0 could not tokenize the corpus (its message says why)")
        yield TokenStream.open(folder, total)
    finally:
        ctx.barrier()  # every rank is done with the stream
        if ctx.is_main:
            shutil.rmtree(folder, ignore_errors=True)
