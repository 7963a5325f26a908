"""The GitHub step summary: the Markdown summary appended to $GITHUB_STEP_SUMMARY when it is set."""

from __future__ import annotations

from pathlib import Path

from nc_audit.report.formats.markdown_out import MarkdownFormat
from nc_audit.report.markdown import append_step_summary
from nc_audit.report.model import Trajectory


class StepSummaryFormat(MarkdownFormat):
    name = "step-summary"

    def write(self, result: Trajectory, path: Path) -> None:
        """Append to ``path``, as GitHub documents for this file (never replace it)."""
        text = self.render(result)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)

    def emit(self, result: Trajectory) -> None:
        """Append to $GITHUB_STEP_SUMMARY, if set (InputError when it cannot be written)."""
        append_step_summary(self.render(result))
