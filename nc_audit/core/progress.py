"""Progress reporting that the library can call without knowing about Rich or a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

Advance = Callable[[int], None]


class Tracker(Protocol):
    """Something that shows progress of named stages; ``stage`` yields a function ``advance(n)``."""

    def stage(self, description: str, total: int | None) -> Iterator[Advance]: ...


class SilentTracker:
    """A tracker that shows nothing (library use, tests, --format json to a pipe)."""

    @contextmanager
    def stage(self, description: str, total: int | None) -> Iterator[Advance]:
        yield lambda n: None
