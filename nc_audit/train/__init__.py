"""Fine-tuning with the cross-model alignment loss: L = (1 − λ)·CE + λ·CMA (+ MIR/HDR terms).

docs/METRICS.md, "Losses"; the loss itself is nc_audit.train.losses.total_loss. Modules, one concern each:

- config:      FinetuneConfig, the run's settings and their checks
- data:        dataset or dump splits, seeded few-shot subsets, derived seeds
- source:      the starting model (a checkpoint's, or an adapter on cached features: nc_audit.models.adapter)
- anchors:     CMA anchors (default: a detached copy of the initial head rows)
- losses:      the differentiable CMA and MIR/HDR terms
- steps:       one epoch: seeded order, (sharded) objective, optimizer steps
- evaluate:    per-epoch measurements (train metrics, test accuracy)
- state:       training checkpoints, RNG state, history.jsonl, resume checks
- session:     building a run, fresh or resumed
- loop:        ``finetune``, the epoch loop and final outputs

The torchrun / DDP context, sharding and gathering are nc_audit.distributed. Other training (the sample
run, the studies, pruning):

- recipe:      one plain supervised recipe for the built-in models
- augment:     shifts, noise and cut-out for small grey images
- fixmatch:    one FixMatch step, with the MIR/HDR regularisers
- semi:        semi-supervised training from scratch with FixMatch steps
- masked:      a short fine-tune that keeps pruning masks at zero

Reproducibility: one seed derives three independent streams (model init, few-shot subset, data order).
A run resumed from DIR's newest complete checkpoint ends with bit-identical weights to an
uninterrupted run on the same machine and thread settings (PyTorch does not promise identical floats
across hardware or thread counts).

DDP: each rank computes the loss on its strided shard of the global batch. Cross-entropy is a mean
over samples, so DDP reproduces the single-process gradient up to float rounding; CMA and MIR/HDR are
batch-level statistics, so DDP optimises the size-weighted mean of per-rank values, which a single
process reproduces with ``loss_shards`` = number of ranks (nc_audit.train.steps).
"""

from __future__ import annotations

from nc_audit.train.config import FinetuneConfig
from nc_audit.train.loop import FinetuneResult, finetune

__all__ = ["FinetuneConfig", "FinetuneResult", "finetune"]
