"""Errors meant for a person: raised once with a message, turned into exit code 2 at the CLI's edge."""

from __future__ import annotations


class InputError(Exception):
    """Bad usage or bad input: the message names the file and the problem, and says what to do next."""
