"""Progress on stderr for the library's Tracker stages (:mod:`nc_audit.core.progress`).

- On a terminal: a Rich bar per stage (:class:`RichTracker`), transient so the report stays clean.
- Otherwise (a CI log, a pipe, a file): a plain line now and then (:class:`PlainTracker`), e.g.
  ``extract train 40% 5,400/13,470 rows 3.1 s`` — at most one every ``interval`` seconds, nothing at all
  for work that ends sooner, and a closing line for each stage that printed one.
- ``--quiet`` (alias ``--no-progress``): nothing (:class:`~nc_audit.core.progress.SilentTracker`).

:func:`make_tracker` picks one of them; use it as a context manager.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from nc_audit.core.progress import Advance, SilentTracker

#: Seconds between two plain progress lines (override with $NC_AUDIT_PROGRESS_INTERVAL).
DEFAULT_INTERVAL = 5.0


class RichTracker:
    """A Rich progress bar on stderr, one task per stage; transient so the report stays clean."""

    def __init__(self, enabled: bool = True) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from nc_audit.report.consoles import new_console

        console = new_console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not (enabled and console.is_terminal),  # a log or pipe gets no bar and no blank lines
        )

    def __enter__(self) -> RichTracker:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    @contextmanager
    def stage(self, description: str, total: int | None, unit: str = "") -> Iterator[Advance]:
        from nc_audit.report.escape import terminal

        task = self._progress.add_task(terminal(description), total=total, unit=unit)
        try:
            yield lambda n: self._progress.advance(task, n)
        finally:
            self._progress.remove_task(task)


@dataclass
class _Stage:
    description: str
    total: int | None
    unit: str
    started: float
    done: int = 0
    shown: int | None = None  # the count of the last line printed for this stage


class PlainTracker:
    """One plain progress line on ``stream`` at most every ``interval`` seconds (see the module doc).

    ``clock`` is for tests. Lines look like ``extract train 40% 5,400/13,470 rows 3.1 s`` (without a
    known total: ``train 5,400 rows 3.1 s``); the seconds count from the stage's start.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval if interval is not None else _interval_from_env()
        self._clock = clock
        self._last = clock()  # nothing is printed in the first interval: quick commands stay quiet

    def __enter__(self) -> PlainTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @contextmanager
    def stage(self, description: str, total: int | None, unit: str = "") -> Iterator[Advance]:
        state = _Stage(description, total, unit, self._clock())

        def advance(n: int) -> None:
            state.done += n
            now = self._clock()
            if now - self._last >= self._interval:
                self._print(state, now)

        try:
            yield advance
        finally:
            if state.shown is not None and state.shown != state.done:  # it was seen running: show its end
                self._print(state, self._clock())

    def _print(self, state: _Stage, now: float) -> None:
        self._last = now
        state.shown = state.done
        self._stream.write(
            progress_line(state.description, state.done, state.total, state.unit, now - state.started) + "\n"
        )
        self._stream.flush()


def progress_line(description: str, done: int, total: int | None, unit: str, seconds: float) -> str:
    """``extract train 40% 5,400/13,470 rows 3.1 s`` (one line: control characters are shown escaped)."""
    unit_text = f" {unit}" if unit else ""
    if total:
        count = f"{min(100, int(100 * done / total))}% {done:,}/{total:,}{unit_text}"
    else:
        count = f"{done:,}{unit_text}"
    text = f"{description} {count} {seconds:.1f} s"
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _interval_from_env() -> float:
    try:
        return max(0.0, float(os.environ.get("NC_AUDIT_PROGRESS_INTERVAL", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def make_tracker(quiet: bool = False, enabled: bool = True) -> Any:
    """The tracker for a command: silent with ``quiet`` (or on a non-main rank, ``enabled=False``), a Rich
    bar when stderr is a terminal, else plain lines. Use it as a context manager."""
    if quiet or not enabled:
        return SilentTracker()
    from nc_audit.report.consoles import new_console

    if new_console(stderr=True).is_terminal:
        return RichTracker()
    return PlainTracker()
