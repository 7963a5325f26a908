"""How many threads a kernel may use: one worker per usable core, and PyTorch's intra-op threads held
at one while several workers run (a worker's blocks are cache-sized; intra-op threads would only
oversubscribe the cores)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch


def worker_count(device: torch.device) -> int:
    """How many workers to use on ``device``: PyTorch's thread count on CPU (at most the usable cores),
    one on an accelerator, whose own kernels are asynchronous."""
    if device.type != "cpu":
        return 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), usable))


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """PyTorch's intra-op thread count set to ``count`` while inside (None: left as it is), restored
    afterwards: the one way nc-audit changes it (kernels, ``--threads`` of the studies, prune and demo)."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def single_threaded_kernels(active: bool) -> AbstractContextManager[None]:
    """Run PyTorch's CPU kernels on one intra-op thread while ``active`` (restored afterwards)."""
    return torch_threads(1 if active else None)
