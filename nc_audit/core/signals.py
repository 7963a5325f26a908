"""Termination signals as exceptions, so that an interrupted run cleans up like a failed one.

By default SIGTERM kills Python at once: no ``finally`` runs, and a half-written temporary file (a
600 MB dump) stays on disk. Within :func:`exceptions_on_signals`, SIGTERM and SIGHUP raise
``SystemExit(128 + signal)`` and SIGINT raises ``KeyboardInterrupt`` in the main thread, so every
``with`` block on the way out runs: :func:`nc_audit.io.guards.atomic.atomic_path` removes its temporary file
and an HDF5 file being written is abandoned cleanly. A second signal while that clean-up runs is
ignored, so the clean-up finishes; and a signal whose exception was swallowed on the way (it arrived
in a weakref callback or an extension's deallocator, which cannot raise) is not printed as "Exception
ignored" but raised again before any write is made final (:func:`raise_if_terminated`).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

#: The signals turned into exceptions (SIGHUP where the platform has it).
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))


class Terminated(SystemExit):
    """Raised in the main thread by SIGTERM or SIGHUP; the exit status is 128 + the signal number."""

    def __init__(self, number: int) -> None:
        super().__init__(128 + number)
        self.signal = number


_pending: int | None = None  # the signal being acted on, once one arrived


def _handler(number: int, frame: FrameType | None) -> None:
    global _pending
    if _pending is not None:  # a second signal while the first one's clean-up runs: let it finish
        return
    _pending = number
    raise_if_terminated()


def raise_if_terminated() -> None:
    """Raise the pending signal's exception again. The first raise happens in the handler, wherever the
    main thread was; an extension's deallocator may swallow it ("Exception ignored"), so code that is
    about to make a write final calls this first (:func:`nc_audit.io.guards.atomic.atomic_path`)."""
    if _pending is None:
        return
    if _pending == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(_pending)


@contextlib.contextmanager
def exceptions_on_signals() -> Iterator[None]:
    """Within the block (main thread only; elsewhere a no-op), termination signals raise exceptions."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for number in SIGNALS:
        with contextlib.suppress(OSError, ValueError):
            previous[number] = signal.signal(number, _handler)
    hook = sys.unraisablehook

    def quiet(unraisable: Any) -> None:
        """Our exception, raised where Python cannot propagate it (a weakref callback, a deallocator):
        not printed as "Exception ignored", since raise_if_terminated raises it again."""
        if _pending is not None and isinstance(unraisable.exc_value, (Terminated, KeyboardInterrupt)):
            return
        hook(unraisable)

    sys.unraisablehook = quiet
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for number, handler in previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(number, handler)
