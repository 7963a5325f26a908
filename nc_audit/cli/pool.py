"""``--pool``: how the features of a head that reads every token (N, T, d) are pooled to (N, d) when the
model's own forward does not say (nc_audit/models/pooling.py). It travels with ``--head`` as ``NAME@RULE``."""

from __future__ import annotations

from typing import Annotated

from typer import Option

PoolOpt = Annotated[
    str | None,
    Option(
        "--pool",
        metavar="last|first|mean",
        help="Pool a head's per-token input (N, T, d) over the non-pad tokens: last, first or mean. "
        "[default: as the model's forward pools it (decoder classifiers: the last non-pad token), else refused]",
    ),
]


def head_with_pool(head: str | None, pool: str | None) -> str | None:
    """The ``--head`` value carrying ``--pool`` (InputError for a rule other than last, first, mean)."""
    if pool is None:
        return head
    from nc_audit.models.pooling import join_head  # torch: only when --pool is given

    return join_head(head, pool)
