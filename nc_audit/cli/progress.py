"""Progress on the terminal: a Rich bar for the library's Tracker stages (:mod:`nc_audit.core.progress`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nc_audit.core.progress import Advance


class RichTracker:
    """A Rich progress bar on stderr, one task per stage; transient so the report stays clean."""

    def __init__(self, enabled: bool = True) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
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
    def stage(self, description: str, total: int | None) -> Iterator[Advance]:
        task = self._progress.add_task(description, total=total)
        try:
            yield lambda n: self._progress.advance(task, n)
        finally:
            self._progress.remove_task(task)
