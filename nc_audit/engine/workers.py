"""Spread a stream of chunks over CPU cores: one thread per core, chunk i to worker i mod W.

PyTorch's kernels and the workers' own reads (``preadv``) release the GIL, so W Python threads that each
own an accumulator keep W cores busy on one pass while the calling thread hands out the chunks; kernels
run single-threaded meanwhile (:mod:`nc_audit.core.threads`). The
assignment of chunks to workers is fixed, so every accumulator, and so every rounding, is the same from
run to run, whatever the thread timing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import torch

Item = TypeVar("Item")
#: Items queued per worker: enough to keep it busy while the calling thread reads the next labels.
QUEUE_DEPTH = 2


class RoundRobin(Generic[Item]):
    """Feed items to ``handlers[i % W]``, each on its own thread (inline when W == 1)."""

    def __init__(self, handlers: Sequence[Callable[[Item], None]]) -> None:
        self._handlers = list(handlers)
        self._queues: list[queue.Queue[tuple[bool, Item | None]]] = []
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._next = 0

    def submit(self, item: Item) -> None:
        """Hand ``item`` to the next worker (blocks while that worker's queue is full)."""
        if self._errors:
            raise self._errors[0]
        index = self._next % len(self._handlers)
        self._next += 1
        if not self._threads:
            self._handlers[index](item)
        else:
            self._queues[index].put((True, item))

    def __enter__(self) -> RoundRobin[Item]:
        if len(self._handlers) > 1:
            for handler in self._handlers:
                jobs: queue.Queue[tuple[bool, Item | None]] = queue.Queue(QUEUE_DEPTH)
                thread = threading.Thread(target=self._run, args=(handler, jobs), daemon=True)
                self._queues.append(jobs)
                self._threads.append(thread)
                thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for jobs in self._queues:
            jobs.put((False, None))
        for thread in self._threads:
            thread.join()
        if self._errors and exc[0] is None:
            raise self._errors[0]

    def _run(self, handler: Callable[[Item], None], jobs: queue.Queue[tuple[bool, Item | None]]) -> None:
        torch.set_num_threads(1)  # OpenMP's thread count is per thread: a new thread starts at the default
        while True:
            more, item = jobs.get()
            if not more:
                return
            if self._errors:
                continue  # another worker failed: drain the queue so the reader never blocks
            try:
                handler(item)  # type: ignore[arg-type]  # more=True: a submitted Item (None only with more=False)
            except BaseException as error:  # re-raised in the calling thread
                self._errors.append(error)
