"""The names of every file and record format nc-audit reads or writes (docs/DESIGN.md, "Files nc-audit
reads and writes"), in one place: a reader checks them, a writer stamps them."""

from __future__ import annotations

#: A measurement's JSON report.
REPORT_SCHEMA = "nc-audit-report/1"
#: A trajectory: one report record per checkpoint, in order.
TRAJECTORY_SCHEMA = "nc-audit-trajectory/1"
#: An HDF5 feature dump.
DUMP_FORMAT = "nc-audit-features/1"
#: A checkpoint nc-audit wrote (a plain dict that torch.load(weights_only=True) reads).
CHECKPOINT_FORMAT = "nc-audit-checkpoint/1"
#: The architecture record stored in checkpoints.
ARCH_FORMAT = "nc-audit-arch/1"
#: A fine-tuning checkpoint (with optimizer and RNG state).
TRAIN_FORMAT = "nc-audit-finetune/1"
#: The loss columns of a fine-tuning history line (DIR/history.jsonl), in the order train.steps sums them.
LOSS_KEYS = ("loss", "ce", "cma", "reg")
#: The JSON of `nc-audit interpolate`.
INTERPOLATION_SCHEMA = "nc-audit-interpolation/1"
#: The JSON of `nc-audit demo grokking`.
GROKKING_SCHEMA = "nc-audit-grokking/1"
#: A study's folder: DIR/study.json (kind and settings; DIR/runs.jsonl holds one record per run).
STUDY_SCHEMA = "nc-audit-study/1"
#: A study's results: settings, every run's record and the summary table (DIR/results.json).
STUDY_RESULTS_SCHEMA = "nc-audit-study-results/1"
#: The JSON of `nc-audit prune`.
PRUNING_SCHEMA = "nc-audit-pruning/1"
