"""Spawning gloo ranks from a test: one-thread children, the parent's environment restored, a deadline."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch.multiprocessing as mp

#: The children's BLAS threads: one each, so two ranks fit two cores.
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def spawn_ranks(
    worker: Callable[..., None], args: tuple[Any, ...], ranks: int, timeout_s: float = 120
) -> None:
    """Run ``worker(rank, *args)`` in ``ranks`` spawned processes (which inherit CHILD_ENV at start) and
    wait for them; a rank still running after ``timeout_s`` fails the test, every rank killed."""
    saved = {name: os.environ.get(name) for name in CHILD_ENV}
    os.environ.update(CHILD_ENV)
    try:
        context = mp.start_processes(worker, args=args, nprocs=ranks, join=False, start_method="spawn")
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {ranks} gloo workers did not finish within {timeout_s:g} s")
