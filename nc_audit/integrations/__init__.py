"""Training-framework callbacks that record Neural Collapse and matrix information while a model trains.

- :mod:`nc_audit.integrations.lightning`: ``NCAuditCallback`` for a PyTorch Lightning ``Trainer``
  (``pip install 'nc-audit[lightning]'``)
- :mod:`nc_audit.integrations.transformers`: ``NCAuditCallback`` for a Hugging Face ``Trainer``
  (``pip install 'nc-audit[hf]'``)

Both append one report record per measured step to a Monitor ``.jsonl`` file (``nc-audit track FILE``
reads, plots and gates it) and log the metrics to the framework's logger. The framework is imported
only by its own module.
"""
