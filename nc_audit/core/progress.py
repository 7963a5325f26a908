"""Progress reporting that the library can call without knowing about Rich or a terminal.

Long work runs inside ``with tracker.stage("extract train", total=13470, unit="rows") as advance:`` and
calls ``advance(n)`` as it goes. The CLI passes a tracker that draws a bar on a terminal or writes a
plain line now and then to a log (:mod:`nc_audit.cli.progress`); library callers get no output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

Advance = Callable[[int], None]


class Tracker(Protocol):
    """Something that shows progress of named stages; ``stage`` yields a function ``advance(n)``.

    ``total`` is the amount of work (None when unknown) and ``unit`` names what is counted ("rows",
    "checkpoints", ...).
    """

    def stage(
        self, description: str, total: int | None, unit: str = ""
    ) -> AbstractContextManager[Advance]: ...


class SilentTracker:
    """A tracker that shows nothing (library use, tests, --quiet); a context manager like the CLI's."""

    def __enter__(self) -> SilentTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @contextmanager
    def stage(self, description: str, total: int | None, unit: str = "") -> Iterator[Advance]:
        yield lambda n: None
