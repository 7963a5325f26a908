"""The one way nc-audit makes a Rich console: emoji codes off.

Rich replaces ``:name:`` with an emoji by default, and no escape exists for it: a checkpoint named
``smile:`` printed beside a ``:`` of ours, or ``:A`` beside ``:A:``, would turn into a picture. Markup and
control characters are escaped piece by piece (:mod:`nc_audit.report.escape`); emoji codes are turned off
for the whole console, so no piece, alone or beside another, becomes one. A test checks that every console
of the package comes from here.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console


def new_console(**options: Any) -> Console:
    """``rich.console.Console(**options)`` with emoji codes off."""
    return Console(emoji=False, **options)
