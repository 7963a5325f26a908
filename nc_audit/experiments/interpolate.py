"""Linear mode connectivity: Neural Collapse and matrix information along the line between two checkpoints.

For two checkpoints A and B of one architecture, θ(α) = (1 − α)·θ_A + α·θ_B for α on an even grid
from 0 to 1 (floating tensors interpolated in float64 and cast back to A's dtype; integer buffers such
as BatchNorm's ``num_batches_tracked`` are taken from A, and the report's notes name those that differ).
At each α the interpolated model runs over one split of a dataset; its features (the head's input) and
the interpolated head go through ``metrics_from_arrays``, the same kernels ``measure`` uses, so α = 0
and α = 1 reproduce the endpoints. Every statistic (class means, NC4 decisions) comes from the
evaluated split itself.

BatchNorm: the mean of two networks' running statistics is not the statistics of the interpolated
network, so at every interior α they are recomputed on the data — the "reset BN" step of linear mode
connectivity work (as ``torch.optim.swa_utils.update_bn`` does: running stats reset, momentum None
for a cumulative average over batches of 512, one forward pass in train mode without gradients) — on
the dataset's train split (the evaluated split when there is no train split). The endpoints keep their
saved statistics, so they equal ``measure``; ``reset_endpoints=True`` recomputes them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nc_audit.core.errors import InputError
from nc_audit.core.formats import INTERPOLATION_SCHEMA
from nc_audit.core.inputs import to_device
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.core.version import __version__
from nc_audit.experiments.evaluation import BATCH_SIZE, evaluate
from nc_audit.io.data.datasets import ArrayDataset, check_two_classes, dataset_splits, load_dataset
from nc_audit.metrics.information import nc_targets
from nc_audit.models.forward_inputs import check_forward_inputs
from nc_audit.models.hooks import call_model, find_head_module
from nc_audit.models.input_fit import check_inputs_fit
from nc_audit.models.loading import LoadedModel
from nc_audit.models.registry import architecture_record
from nc_audit.models.spec import NO_MODEL, ModelSpec


@dataclass(frozen=True)
class Interpolation:
    """The measured line: one record per α, the two endpoints, the dataset, and the NC targets."""

    a: dict[str, Any]
    b: dict[str, Any]
    data: str
    split: str
    records: list[dict[str, Any]]
    targets: dict[str, float | None]
    notes: list[str]

    @property
    def metric_keys(self) -> list[str]:
        """Every metric measured at some α, in the order first measured (the table's columns)."""
        return list(dict.fromkeys(key for record in self.records for key in record["metrics"]))

    def to_dict(self) -> dict[str, Any]:
        """Plain data in schema ``nc-audit-interpolation/1``."""
        return {
            "schema": INTERPOLATION_SCHEMA,
            "nc_audit_version": __version__,
            "a": self.a,
            "b": self.b,
            "data": self.data,
            "split": self.split,
            "records": self.records,
            "targets": self.targets,
            "notes": self.notes,
        }


def alphas(steps: int) -> list[float]:
    """``steps`` evenly spaced α in [0, 1], both ends exact; fewer than 2 is an InputError."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise InputError(f"--steps {steps}: need at least 2 points (the two endpoints α = 0 and α = 1)")
    return [i / (steps - 1) for i in range(steps)]


def _normalised(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A built-in record with its defaults filled in the current way (records of other kinds as they are)."""
    try:
        return architecture_record(record["name"], record["config"], record["num_classes"])  # type: ignore[index]  # None: TypeError, caught
    except (InputError, KeyError, TypeError):
        return record


def check_same_architecture(a: LoadedModel, b: LoadedModel) -> list[str]:
    """InputError naming both files unless A and B are one architecture with the same tensors; returns
    notes naming the integer buffers that differ (taken from A). What is compared is what will be built
    (``LoadedModel.architecture``: the --model factory when one is given, for both ends), then the
    checkpoints' tensors."""
    where = f"{a.checkpoint.path} and {b.checkpoint.path}"
    arch_a, arch_b = _normalised(a.architecture), _normalised(b.architecture)
    if arch_a != arch_b:
        raise InputError(
            f"{where} hold different architectures ({_describe(arch_a)} vs {_describe(arch_b)}); "
            "interpolation needs two checkpoints of one architecture"
        )
    state_a, state_b = a.checkpoint.state_dict, b.checkpoint.state_dict
    if set(state_a) != set(state_b):
        only_a, only_b = sorted(set(state_a) - set(state_b)), sorted(set(state_b) - set(state_a))
        raise InputError(
            f"{where} hold different tensors (only in A: {', '.join(only_a[:3]) or 'none'}; "
            f"only in B: {', '.join(only_b[:3]) or 'none'}); interpolation needs one architecture"
        )
    differing = []
    for key, tensor_a in state_a.items():
        tensor_b = state_b[key]
        if tensor_a.shape != tensor_b.shape:
            raise InputError(
                f"{where}: tensor {key} has shape {tuple(tensor_a.shape)} vs {tuple(tensor_b.shape)}; "
                "interpolation needs one architecture"
            )
        floating = (tensor_a.is_floating_point(), tensor_b.is_floating_point())
        if floating[0] != floating[1]:
            raise InputError(f"{where}: tensor {key} is floating in one checkpoint and integer in the other")
        if floating == (False, False) and not torch.equal(tensor_a, tensor_b):
            differing.append(key)
    if not differing:
        return []
    shown = ", ".join(differing[:4]) + (f" (+{len(differing) - 4} more)" if len(differing) > 4 else "")
    return [f"integer buffers differ between the endpoints ({shown}): taken from A at every α"]


def _describe(architecture: dict[str, Any] | None) -> str:
    if architecture is None:
        return "no architecture record"
    return f"{architecture.get('name')} {architecture.get('config')}"


def interpolated_state(
    state_a: dict[str, torch.Tensor], state_b: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """θ(α) = (1 − α)·θ_A + α·θ_B for floating tensors (float64 arithmetic, A's dtype); others from A."""
    state: dict[str, torch.Tensor] = {}
    for key, tensor_a in state_a.items():
        if tensor_a.is_floating_point():
            mixed = (1.0 - alpha) * tensor_a.double() + alpha * state_b[key].double()  # tensor's shape
            state[key] = mixed.to(tensor_a.dtype)
        else:
            state[key] = tensor_a
    return state


def batch_norms(model: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers that keep running statistics."""
    return [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def recompute_batch_norm(model: torch.nn.Module, dataset: ArrayDataset, device: torch.device) -> None:
    """Reset BN: every BatchNorm's running statistics recomputed as a cumulative average over the batches
    of ``dataset`` (train-mode forward, no gradients); the model is left in eval mode."""
    norms = batch_norms(model)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over batches
    model.train()
    try:
        with torch.no_grad():
            for inputs, labels in dataset.batches(BATCH_SIZE):
                if labels.shape[0] > 1:  # train-mode BatchNorm needs two samples
                    call_model(model, to_device(inputs, device))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()


def _check_labels(dataset: ArrayDataset, data: str, num_classes: int) -> None:
    top = int(dataset.labels.max())
    if top >= num_classes:
        raise InputError(
            f"{data} [{dataset.split}]: labels go up to {top} but the model's head has {num_classes} classes"
        )


def run_interpolation(
    a_path: Path | str,
    b_path: Path | str,
    data: str,
    *,
    steps: int = 11,
    split: str = "train",
    model: ModelSpec = NO_MODEL,
    tracker: Tracker | None = None,
    reset_endpoints: bool = False,
) -> Interpolation:
    """The models along θ(α) = (1 − α)·θ_A + α·θ_B, α = 0 … 1.

    ``data`` is a dataset spec (``digits``, ``modadd:p=23``, a .npz/.h5 file) and ``split`` its split;
    ``model`` the factory (for checkpoints without an architecture record), its arguments, the head
    module's name and the device. Checkpoints of different architectures, tensor sets or shapes raise InputError. The result's
    ``records`` hold ``{alpha, accuracy, loss, metrics}`` per α, and for a model with BatchNorm
    ``bn_stats``: "saved" or "recomputed" (see the module docstring).
    """
    grid = alphas(steps)
    tracker = tracker or SilentTracker()
    target = model.torch_device()
    loaded_a = model.load(a_path)
    loaded_b = model.load(b_path)
    notes = check_same_architecture(loaded_a, loaded_b)
    dataset = load_dataset(data, split)
    net = loaded_a.model.to(target)
    _check_labels(dataset, data, find_head_module(net, loaded_a.head_name)[1].out_features)
    check_forward_inputs(net, dataset.inputs, f"{data} [{dataset.split}]")  # before any forward pass
    check_inputs_fit(net, dataset.inputs, f"{data} [{dataset.split}]")
    check_two_classes(dataset.labels, f"{data} [{dataset.split}]")
    # the models' own state dicts: keyed as the model names them (a Hugging Face folder's stored names, or
    # a checkpoint's stripped prefixes, may differ)
    state_a = {key: value.detach().cpu().clone() for key, value in loaded_a.model.state_dict().items()}
    state_b = {key: value.detach().cpu().clone() for key, value in loaded_b.model.state_dict().items()}
    has_bn = bool(batch_norms(net))
    bn_data = dataset
    if has_bn:
        bn_split = "train" if "train" in dataset_splits(data) else split
        bn_data = dataset if bn_split == split else load_dataset(data, bn_split)
        notes.append(
            f"BatchNorm running statistics recomputed on {data} [{bn_split}] at "
            f"{'every α' if reset_endpoints else 'every interior α (the endpoints keep their saved ones)'}"
        )
    records = []
    with tracker.stage(f"interpolate on {dataset.split}", len(grid), unit="α values") as advance:
        for alpha in grid:
            net.load_state_dict(interpolated_state(state_a, state_b, alpha), strict=True)
            recompute = has_bn and (reset_endpoints or 0.0 < alpha < 1.0)
            if recompute:
                recompute_batch_norm(net, bn_data, target)
            record = {"alpha": alpha, **evaluate(net, loaded_a.head_name, dataset, target)}
            if has_bn:
                record["bn_stats"] = "recomputed" if recompute else "saved"
            records.append(record)
            advance(1)
    num_classes = int(torch.unique(dataset.labels).numel())
    return Interpolation(
        a=_endpoint(loaded_a),
        b=_endpoint(loaded_b),
        data=dataset.spec,
        split=dataset.split,
        records=records,
        targets=nc_targets(num_classes),
        notes=notes,
    )


def _endpoint(loaded: LoadedModel) -> dict[str, Any]:
    return {"path": str(loaded.checkpoint.path), "sha256": loaded.checkpoint.sha256, "head": loaded.head_name}


def plot_interpolation(result: Interpolation, path: Path | str) -> None:
    """PNG of accuracy, cross-entropy, NC1, NC4, MIR and HDR against α (NC targets dashed), written atomically."""
    from nc_audit.report.figures import interpolation_figure
    from nc_audit.report.plots import save_figure

    save_figure(interpolation_figure(result.to_dict()), path)
