"""What the experiment commands (studies, prune, demo) share in the CLI: reading a comma-separated list
option, applying --seeds and --epochs to a study, printing one escaped console line per finished run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar, Protocol, TypeVar

from nc_audit.cli.common import stderr
from nc_audit.core.errors import InputError
from nc_audit.report.tables import Line, Number
from nc_audit.report.tables_console import console_text

Record = Mapping[str, Any]


def parse_numbers(text: str, option: str, kind: type[float] | type[int] = float) -> tuple[Any, ...]:
    """``0,0.05,0.1`` → (0.0, 0.05, 0.1) (``kind=int``: ``4,10`` → (4, 10)); InputError naming the option
    otherwise."""
    noun, example = ("integers", "4,10") if kind is int else ("numbers", "0,0.1,0.2")
    try:
        values = tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"{option} {text!r}: expected comma-separated {noun} such as {example}") from None
    if not values:
        raise InputError(f"{option} {text!r}: give at least one {noun[:-1]}")
    return values


class SeededStudy(Protocol):
    """A study dataclass with seeds and a training recipe (label smoothing, regulariser, lmc, prune)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def seeds(self) -> tuple[int, ...]: ...

    @property
    def recipe(self) -> Any: ...


Study = TypeVar("Study", bound=SeededStudy)


def with_seeds_and_epochs(study: Study, seeds: int | None, epochs: int | None) -> Study:
    """``study`` with ``--seeds N`` (seeds 0 … N−1) and ``--epochs N`` (its recipe's) where given."""
    if seeds is not None:
        study = replace(study, seeds=tuple(range(seeds)))
    if epochs is not None:
        study = replace(study, recipe=replace(study.recipe, epochs=epochs))
    return study


def say(line: Line) -> None:
    """One console line on stderr, every piece escaped (nc_audit.report.tables_console)."""
    stderr.print(console_text(line), markup=True, highlight=False)


def run_line(describe: Callable[[Record], Line]) -> Callable[[int, int, Record, bool], None]:
    """The per-run callback: ``[3/12] ε=0.1 seed 2: test accuracy 0.9822, … (12.3 s)`` on stderr."""

    def show(index: int, total: int, record: Record, resumed: bool) -> None:
        when: Line = (
            ("read back from runs.jsonl",) if resumed else (Number(record.get("seconds", 0.0), 1), " s")
        )
        say((f"[{index}/{total}] ", *describe(record), " (", *when, ")"))

    return show
