"""Errors meant for a person: raised once with a message, turned into exit code 2 at the CLI's edge."""

from __future__ import annotations

from typing import Any


class InputError(Exception):
    """Bad usage or bad input: the message names the file and the problem, and says what to do next."""


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (its type name when empty), cut to ``limit`` characters:
    the detail an InputError quotes from a library's error."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """' did you mean 'X'?' naming the closest of ``choices`` to ``name``, or '' when none is close."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" did you mean '{close[0]}'?" if close else ""


def changed_settings(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """``key old → new`` for every setting in ``wanted`` that ``stored`` (a run's record) holds otherwise."""
    return [
        f"{key} {stored.get(key)!r} → {value!r}" for key, value in wanted.items() if stored.get(key) != value
    ]
