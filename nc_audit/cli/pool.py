"""``--pool`` (declared in nc_audit/cli/options.py): how the features of a head that reads every token (N, T, d) are pooled to (N, d) when the
model's own forward does not say (nc_audit/models/pooling.py). It travels with ``--head`` as ``NAME@RULE``."""

from __future__ import annotations


def head_with_pool(head: str | None, pool: str | None) -> str | None:
    """The ``--head`` value carrying ``--pool`` (InputError for a rule other than last, first, mean)."""
    if pool is None:
        return head
    from nc_audit.models.pooling import join_head  # torch: only when --pool is given

    return join_head(head, pool)
