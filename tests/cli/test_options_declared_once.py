"""Every shared option is declared once (nc_audit/cli/options.py) and reads the same in every command:
the click parameters of the whole Typer app are compared with each other and with the declaration.

A command that declares its own ``--device`` (another help, another default) or drops a shared option
it should have fails here, as does an option that several commands repeat without a shared declaration.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from nc_audit.cli import app
from nc_audit.cli import options as declared

#: The study commands → the folder each writes to by default (studies/NAME; study prune: studies/prune-seeds,
#: since studies/prune holds `nc-audit prune`'s study of the sample checkpoint).
STUDY_OUT = {"label-smoothing": "label-smoothing", "semi-supervised": "semi-supervised",
             "regularizer": "regularizer", "lmc": "lmc", "prune": "prune-seeds"}  # fmt: skip
STUDY_FOLDERS = tuple(STUDY_OUT)
#: Shared option → (its declaration(s) in nc_audit/cli/options.py with the command default, commands).
SHARED: dict[str, tuple[tuple[tuple[Any, Any], ...], frozenset[str]]] = {
    "--device": (((declared.DeviceOpt, None),), frozenset({"measure", "track", "extract", "finetune", "interpolate", "prune"})),
    "--head": (((declared.HeadOpt, None),), frozenset({"measure", "track", "extract", "finetune", "interpolate", "prune"})),
    "--model": (((declared.ModelOpt, None),), frozenset({"measure", "track", "extract", "finetune", "interpolate", "prune"})),
    "--model-arg": (((declared.ModelArgOpt, None),), frozenset({"measure", "track", "extract", "finetune", "interpolate", "prune"})),
    "--format": (((declared.FormatOpt, None),), frozenset({"measure", "track", "interpolate", "prune"})),
    "--pool": (((declared.PoolOpt, None),), frozenset({"measure", "track", "extract"})),
    "--json": (((declared.JsonOpt, None),), frozenset({"measure", "track", "interpolate", "prune"})),
    "--markdown": (
        ((declared.MarkdownOpt, None), (declared.PageMarkdownOpt, None)),
        frozenset({"measure", "track", "prune", "study label-smoothing", "study semi-supervised", "study regularizer",
                   "study lmc", "study prune"}),
    ),
    "--junit": (((declared.JunitOpt, None),), frozenset({"measure", "track"})),
    "--html": (((declared.HtmlOpt, None),), frozenset({"measure", "track", "finetune"})),
    "--threads": (
        ((declared.ThreadsOpt, 1), (declared.TorchThreadsOpt, None)),
        frozenset({"prune", "study label-smoothing", "study semi-supervised", "study regularizer", "study lmc",
                   "study prune", "demo grokking"}),
    ),
    "--quiet": (
        ((declared.QuietOpt, False),),
        frozenset({"measure", "track", "extract", "finetune", "interpolate", "prune", "demo grokking",
                   "study label-smoothing", "study semi-supervised", "study regularizer", "study lmc",
                   "study prune"}),
    ),
    "--allow-external-data": (((declared.AllowExternalOpt, False),), frozenset({"measure", "track", "extract", "finetune"})),
    "--cache-dir": (((declared.CacheDirOpt, None),), frozenset({"measure", "track"})),
    "--means-split": (((declared.MeansSplitOpt, None),), frozenset({"measure", "track"})),
    "--fail-on": (((declared.FailOnOpt, None),), frozenset({"measure", "track"})),
    "--tolerance": (((declared.ToleranceOpt, None),), frozenset({"measure", "track"})),
    "--chunk-rows": (((declared.ChunkRowsOpt, None),), frozenset({"measure", "track"})),
    "--decision-samples": (((declared.DecisionSamplesOpt, None),), frozenset({"measure", "track"})),
    "--class-route": (((declared.ClassRouteOpt, declared.ClassRoute.auto),), frozenset({"measure", "track"})),
    "--min-class-samples": (((declared.MinClassSamplesOpt, 1),), frozenset({"measure", "track"})),
    "--task": (((declared.TaskOpt, declared.Task.classification),), frozenset({"measure", "extract", "track"})),
    "--context": (((declared.ContextOpt, None),), frozenset({"measure", "extract", "track"})),
    "--text-column": (((declared.TextColumnOpt, "text"),), frozenset({"measure", "extract", "track"})),
    "--data-arg": (((declared.DataArgOpt, None),), frozenset({"measure", "extract", "track"})),
    "--workers": (((declared.WorkersOpt, 0),), frozenset({"measure", "extract", "track"})),
    "--label-column": (((declared.LabelColumnOpt, None),), frozenset({"measure", "extract", "track"})),
    "--layers": (((declared.LayersOpt, None),), frozenset({"measure", "track"})),
    # the studies' own options (other commands' --out, --resume, --quick, --plot: OWN_MEANING)
    "--out": (
        tuple((declared.StudyOutOpt, Path(f"studies/{folder}")) for folder in STUDY_OUT.values()),
        frozenset(f"study {name}" for name in STUDY_FOLDERS),
    ),
    "--resume": (((declared.StudyResumeOpt, False),), frozenset(f"study {name}" for name in STUDY_FOLDERS)),
    "--quick": (((declared.StudyQuickOpt, False),), frozenset(f"study {name}" for name in STUDY_FOLDERS)),
    "--seeds": (((declared.StudySeedsOpt, None),), frozenset(f"study {name}" for name in STUDY_FOLDERS)),
    "--plot": (((declared.StudyPlotOpt, None),), frozenset(f"study {name}" for name in STUDY_FOLDERS)),
}  # fmt: skip

#: Names several commands use with a meaning of their own (so one declaration would be wrong), and why.
OWN_MEANING = {
    "--data": "the help says what the data is for (options.data_option(purpose)); study's has a default",
    "--split": "measure/track: one split, means from train; extract: a list; interpolate: means from it too",
    "--features": "measure reads a dump; finetune trains an adapter on one",
    "--baseline": "measure/track: a report to compare with; study semi-supervised: a supervised run",
    "--model": "demo grokking: a built-in architecture name (listed in SHARED for the six factory commands)",
    "--out": "each command writes other files (listed in SHARED for the studies)",
    "--resume": "each command continues other records (listed in SHARED for the studies)",
    "--plot": "each command plots other things (listed in SHARED for the studies)",
    "--steps": "interpolate and study lmc: α values; demo: training steps; study semi-supervised: optimizer steps",
    "--seed": "what the seed seeds differs",
    "--quick": "each command shortens other things (listed in SHARED for the studies)",
    "--weights": "each study sweeps its own λ values (other defaults, another regulariser form)",
    "--lr": "finetune and prune's fine-tune have their own defaults",
    "--batch-size": "extract: forward passes; finetune/prune: training batches",
    "--epochs": "finetune: epochs to train; study: epochs per run",
    "--sparsities": "prune: a plain default; study prune: none, so that --quick can shorten the list",
    "--cache-dir": "cache list/clear: the folder to list or clear (listed in SHARED for measure and track)",
}


def _commands() -> Iterator[tuple[str, Any]]:
    def walk(command: Any, prefix: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, (*prefix, name))
        else:
            yield " ".join(prefix), command

    yield from walk(typer.main.get_command(app), ())


def _describe(param: Any) -> dict[str, Any]:
    """What a user meets of one option: its names, help, default, metavar, value type and range, flags,
    completion (every attribute of the click parameter but its Python name)."""
    skipped = ("name", "type_descriptor", "_custom_shell_complete")  # completion: compared below, unwrapped
    described = {key: value for key, value in vars(param).items() if key not in skipped}
    if described.get("callback") is not None:  # Typer wraps a callback per command: compare what it wraps
        callback = described["callback"]
        described["callback"] = (callback.__module__, callback.__qualname__)
    described["annotation"] = repr(param.type_descriptor.annotation)
    described["completion"] = getattr(param.type_descriptor.parameter_info, "autocompletion", None)
    return described


def _uses() -> dict[str, dict[str, dict[str, Any]]]:
    """option → command → description."""
    uses: dict[str, dict[str, dict[str, Any]]] = {}
    for name, command in _commands():
        for param in command.params:
            if param.param_type_name == "option":
                uses.setdefault(param.opts[0], {})[name] = _describe(param)
    return uses


def _declaration(option: str, alias: Any, default: Any) -> dict[str, Any]:
    """``option`` as nc_audit/cli/options.py declares it, with ``default``, in an app of its own."""
    single = typer.Typer()
    name = option.removeprefix("--").replace("-", "_")

    def command(**values: Any) -> None:
        """One option."""

    parameter = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=alias)
    command.__signature__ = inspect.Signature([parameter])  # type: ignore[attr-defined]  # how Typer reads it
    command.__annotations__ = {name: alias, "return": None}
    single.command()(command)
    (param,) = [p for p in typer.main.get_command(single).params if p.name == name]
    return _describe(param)


@pytest.mark.parametrize("option", sorted(SHARED))
def test_a_shared_option_reads_as_declared_in_every_command_that_has_it(option: str) -> None:
    declarations, expected = SHARED[option]
    uses = _uses()[option]
    if option in OWN_MEANING:  # e.g. demo grokking's --model, prune's --out: a meaning of their own
        uses = {name: use for name, use in uses.items() if name in expected}
    assert set(uses) == expected, f"{option}: commands that have it differ from {sorted(expected)}"
    allowed = [_declaration(option, alias, default) for alias, default in declarations]
    for name, use in uses.items():
        assert use in allowed, f"nc-audit {name} {option}: not the declaration in nc_audit/cli/options.py"


def test_every_option_that_several_commands_repeat_is_shared_or_has_a_meaning_of_its_own() -> None:
    repeated = {option for option, by_command in _uses().items() if len(by_command) > 1}
    unexplained = repeated - set(SHARED) - set(OWN_MEANING)
    assert not unexplained, f"declare these once in nc_audit/cli/options.py: {sorted(unexplained)}"


def test_the_declarations_are_typer_options() -> None:
    for option, (declarations, _) in SHARED.items():
        for alias, _default in declarations:
            assert isinstance(alias.__metadata__[0], typer.models.OptionInfo), option
