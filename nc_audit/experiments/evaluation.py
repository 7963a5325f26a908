"""One model on one split, measured in memory: accuracy, mean cross-entropy and every class-level metric.

The features are the head's input (a forward pre-hook), the head is the model's own (float64), and the
metrics come from ``metrics_from_arrays`` — the kernels ``measure`` runs — so a model measured here and
the same model saved and measured with ``nc-audit measure --data`` agree. Used by ``interpolate`` and
the studies (nc_audit.experiments.studies).
"""

from __future__ import annotations

import torch
from torch.nn.functional import cross_entropy

from nc_audit.core.inputs import to_device
from nc_audit.io.checkpoints.load import Head
from nc_audit.io.data.datasets import ArrayDataset
from nc_audit.measurement.compute import metrics_from_arrays
from nc_audit.models.hooks import find_head_module, forward_with_features
from nc_audit.report.model import finite_or_none
from nc_audit.report.ranges import check_ranges

BATCH_SIZE = 512  # the batch size of ``extract``, so features match a cached dump bit for bit


def evaluate(model: torch.nn.Module, head_name: str, dataset: ArrayDataset, device: torch.device) -> dict:
    """Accuracy, mean cross-entropy and every class-level metric of ``model`` on one split."""
    features, logits = [], []
    with torch.inference_mode():
        for inputs, _ in dataset.batches(BATCH_SIZE):
            batch_logits, batch_features = forward_with_features(model, to_device(inputs, device), head_name)
            logits.append(batch_logits)  # (n, C)
            features.append(batch_features)  # (n, d)
        H = torch.cat(features)  # (N, d)
        Z = torch.cat(logits)  # (N, C)
    labels = dataset.labels.to(H.device)  # (N,)
    head_module = find_head_module(model, head_name)[1]
    head = Head(head_name, head_module.weight.detach().to(torch.float64), _float64(head_module.bias))
    metrics, counter = metrics_from_arrays(H, labels, head)
    loss = cross_entropy(Z.double(), labels)  # mean over the N samples, float64
    metrics, notes = check_ranges(metrics, int(head.weight.shape[0]), int(H.shape[0]))  # report/ranges.py
    return {
        "accuracy": counter.accuracy,
        "loss": finite_or_none(float(loss)),
        "metrics": {key: finite_or_none(value) for key, value in metrics.items()},
        **({"notes": notes} if notes else {}),
    }


def _float64(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """A head tensor, detached, in float64 (the precision of every statistic)."""
    return None if tensor is None else tensor.detach().to(torch.float64)
