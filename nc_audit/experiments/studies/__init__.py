"""Studies: the claims of Song et al. (arXiv 2406.03999, 2409.16767) measured on small models, end to end.

- records:          resumable study folders (DIR/study.json + DIR/runs.jsonl), the run loop
- summary:          mean ± sample standard deviation over seeds, per group of runs
- label_smoothing:  the sample model trained from scratch with label smoothing ε
- semi_supervised:  few labels per class, FixMatch on the rest, with and without the MIR/HDR regularisers

Magnitude pruning, a user feature with its own command, lives in nc_audit.experiments.prune and keeps
its records the same way; the grokking demo is nc_audit.experiments.grokking.
"""
