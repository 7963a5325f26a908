"""``nc-audit finetune``'s options → :class:`nc_audit.train.config.FinetuneConfig`, by parameter name:
every setting of the run is an option of the same name (``--model-arg`` fills ``model_args``), so a
new setting is one field plus one option, never a third hand-copied line
(tests/cli/test_finetune_options.py checks the one-to-one match)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nc_audit.cli.project import project_device

if TYPE_CHECKING:
    from nc_audit.train.config import FinetuneConfig

#: The command's parameters that are not settings of the run: how it is shown and what it may read.
NOT_SETTINGS = frozenset({"html_path", "quiet", "allow_external_data"})
#: Parameter name → FinetuneConfig field, where they differ (a repeatable option fills a tuple field).
RENAMED = {"model_arg": "model_args"}


def finetune_config(options: Mapping[str, Any]) -> FinetuneConfig:
    """The FinetuneConfig of the command's parameters (``options``: name → value as Typer gave it),
    checked on construction; ``--device`` not given is the [tool.nc-audit] device, else auto."""
    from nc_audit.train.config import FinetuneConfig

    values = {RENAMED.get(name, name): value for name, value in options.items() if name not in NOT_SETTINGS}
    values["model_args"] = tuple(values.get("model_args") or ())
    values["device"] = project_device(values.get("device"))
    return FinetuneConfig(**values)
