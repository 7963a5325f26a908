"""Spawning children of a from-scratch run (the instability analysis of Frankle et al.), and keeping a run's
state between epochs in a file.

A child of a run at epoch k is an exact copy of the run's state (weights, BatchNorm buffers, the SGD
momentum buffers, the cosine schedule at epoch k) with a batch-order generator of its own; trained on to
the end it continues the parent's learning-rate schedule and momentum exactly as the parent would have,
and differs from the parent's own continuation only by the order of the batches. With ``order_seed``
None the child keeps a copy of the parent's generator: it then ends with the very floats of the run
trained straight through (tested).

A run state file is a self-describing nc-audit checkpoint (nc_audit.io.checkpoints.save; the weights
and the architecture record) that also holds, as plain data ``torch.load(weights_only=True)`` reads back,
the optimizer's and the schedule's state dicts and the generator's state.
"""

from __future__ import annotations

import copy
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.container import check_checkpoint_file
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.models.registry import build_model
from nc_audit.train.recipe import Recipe, RunState, optimizer_of

RUN_STATE_FORMAT = "nc-audit-run-state/1"


def _restored(model: torch.nn.Module, recipe: Recipe, optimizer: dict[str, Any], schedule: dict[str, Any],
              order: torch.Tensor) -> RunState:  # fmt: skip
    """A RunState over ``model`` with the optimizer, schedule and generator states put back (the
    schedule is built first: its construction sets the learning rate that the optimizer's state replaces)."""
    new_optimizer, new_schedule = optimizer_of(model, recipe)
    new_optimizer.load_state_dict(optimizer)
    new_schedule.load_state_dict(schedule)
    generator = torch.Generator()
    generator.set_state(order)
    return RunState(model, new_optimizer, new_schedule, generator)


def spawn(parent: RunState, recipe: Recipe, order_seed: int | None) -> RunState:
    """A child of ``parent`` at its current epoch: copies of its model, optimizer state and schedule (the
    parent is left as it is and shares no tensor with the child), with a batch-order generator seeded
    with ``order_seed`` (None: a copy of the parent's generator)."""
    model = copy.deepcopy(parent.model)
    order = (
        parent.order.get_state()
        if order_seed is None
        else torch.Generator().manual_seed(order_seed).get_state()
    )
    optimizer = copy.deepcopy(parent.optimizer.state_dict())
    return _restored(model, recipe, optimizer, parent.schedule.state_dict(), order)


def save_run_state(path: Path, state: RunState, record: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a killed write leaves no file that looks complete)."""
    extra = {
        "run_state_format": RUN_STATE_FORMAT,
        "optimizer": state.optimizer.state_dict(),
        "schedule": state.schedule.state_dict(),
        "order": state.order.get_state(),
        "complete": True,
    }
    save_checkpoint(path, state.model.state_dict(), record, {**meta, "epoch": state.epoch}, extra)


def read_payload(path: Path, what: str) -> dict[str, Any]:
    """The plain dict a .pt file holds, read with ``torch.load(weights_only=True)`` (no code executed) after
    the container checks of nc_audit.io.checkpoints.container; InputError naming the file otherwise."""
    check_checkpoint_file(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL (\S+)", str(error))
        culprit = f"a Python object ({found.group(1)})" if found else "a Python object"
        raise InputError(
            f"{path}: refused to unpickle {culprit}, which could execute code; not a {what} this study "
            "wrote: delete it to train again"
        ) from None
    except Exception as error:  # torch.load on damaged bytes can raise almost anything
        detail = str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: not a readable {what} ({detail}); delete it to train again") from None
    if not isinstance(payload, dict):
        raise InputError(f"{path}: not a {what} (a {type(payload).__name__}); delete it to train again")
    return payload


def load_run_state(path: Path, record: dict[str, Any], recipe: Recipe) -> RunState:
    """The run state in ``path`` (written by :func:`save_run_state`) on the architecture ``record`` with
    ``recipe``'s optimizer and schedule; InputError naming the file when it is not one."""
    payload = read_payload(path, "run state")
    if not (
        payload.get("run_state_format") == RUN_STATE_FORMAT
        and payload.get("complete") is True
        and payload.get("architecture") == record
        and isinstance(payload.get("state_dict"), dict)
        and isinstance(payload.get("optimizer"), dict)
        and isinstance(payload.get("schedule"), dict)
        and isinstance(payload.get("order"), torch.Tensor)
    ):
        raise InputError(
            f"{path}: not a complete {RUN_STATE_FORMAT} file of this study's model; delete it to train again"
        )
    model = build_model(record)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
        state = _restored(model, recipe, payload["optimizer"], payload["schedule"], payload["order"])
    except (RuntimeError, KeyError, ValueError, TypeError) as error:
        detail = str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: run state does not fit the study's model ({detail}); delete it") from None
    group = state.optimizer.param_groups[0]
    expected = (recipe.epochs, recipe.lr, recipe.momentum, recipe.weight_decay)
    if (
        state.schedule.T_max,
        state.schedule.base_lrs[0],
        group["momentum"],
        group["weight_decay"],
    ) != expected:
        raise InputError(f"{path}: a run state of another recipe (schedule or optimizer differ); delete it")
    if payload.get("epoch") != state.epoch:
        raise InputError(f"{path}: its epoch and its schedule disagree; delete it to train again")
    return state
