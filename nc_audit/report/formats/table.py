"""``--format table`` (the default): Rich tables for a terminal or a CI log; a trajectory under GitHub
Actions also prints each checkpoint's report in a collapsed group (report/github.py)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from nc_audit.report.escape import terminal
from nc_audit.report.formats.base import TextFormat, single
from nc_audit.report.model import Trajectory

if TYPE_CHECKING:
    from rich.console import Console


class TableFormat(TextFormat):
    name = "table"
    escape = staticmethod(terminal)

    def show(self, result: Trajectory) -> None:
        from nc_audit.report.console import make_console

        self._print(self.view(result), make_console())

    def render_view(self, view: Trajectory) -> str:
        from nc_audit.report.consoles import new_console

        console = new_console(width=120, record=True, file=_Discard(), color_system=None)
        self._print(view, console)
        return console.export_text()

    @staticmethod
    def _print(view: Trajectory, console: Console) -> None:
        """Print the escaped ``view`` (markup escaped in every string from an input) on ``console``."""
        from nc_audit.report.console import render_report
        from nc_audit.report.github import github_actions, render_checkpoint_groups
        from nc_audit.report.trajectory_console import render_trajectory

        report = single(view)
        if report is not None:
            render_report(report, console)
            return
        if github_actions():
            render_checkpoint_groups(view, console)
        render_trajectory(view, console)


class _Discard(io.StringIO):
    """A text stream that keeps nothing (the recording console keeps the text)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None
