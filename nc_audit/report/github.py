"""GitHub Actions log output: each checkpoint's report of a trajectory in a collapsible group.

Inside a group, workflow commands are switched off (``::stop-commands::TOKEN`` … ``::TOKEN::``), so a
checkpoint name or note that contains ``::error::`` or a line break cannot inject a command into the
log; the group titles are escaped the way GitHub documents for command values.
"""

from __future__ import annotations

import os
import secrets

from rich.console import Console

from nc_audit.report.console import make_console, render_report
from nc_audit.report.formats.view import raw_text
from nc_audit.report.model import Report, Trajectory, record_label


def github_actions() -> bool:
    """True inside a GitHub Actions job (GitHub sets GITHUB_ACTIONS=true)."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def command_value(text: str) -> str:
    """``text`` safe as a workflow command's value: %, CR and LF escaped, other control characters dropped."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return "".join(ch for ch in text if ch.isprintable())


def group_title(record: Report, index: int) -> str:
    """``nc-audit epoch_0750.pt (step 750): passed`` — the verdict only for gated checkpoints. Composed
    from the raw label (a workflow command value has its own escaping: :func:`command_value`)."""
    title = f"nc-audit {raw_text(record_label(record, index))}"
    if record.step is not None and record.label is not None:
        title += f" (step {record.step})"
    checks = record.checks
    if record.gated is not False and checks:
        failed = sum(not check.passed for check in checks)
        title += f": {failed} of {len(checks)} checks failed" if failed else f": {len(checks)} checks passed"
    return title


def render_checkpoint_groups(trajectory: Trajectory, console: Console | None = None) -> None:
    """Print every record's full report (header, metrics, conventions, notes, checks) in its own group."""
    console = console or make_console()
    for index, record in enumerate(trajectory):
        token = secrets.token_hex(16)
        console.out(f"::group::{command_value(group_title(record, index))}", highlight=False)
        console.out(f"::stop-commands::{token}", highlight=False)
        render_report(record, console)
        console.out(f"::{token}::", highlight=False)
        console.out("::endgroup::", highlight=False)
