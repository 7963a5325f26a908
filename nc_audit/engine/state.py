"""One merge protocol for every streaming accumulator, for workers and ranks alike.

The idea is torchmetrics' (``add_state(name, default, dist_reduce_fx)``): an accumulator declares each of
its states with the reduction that combines two disjoint shares of the rows, and one generic merge
serves every accumulator:

- ``"sum"``: plain sums over rows (counts, sums of squares, scatters); merging adds them.
- ``"custom"``: states that merge only together, by the accumulator's own :meth:`Accumulator.combine`
  (the first pass's sums about per-class shifts, which must be re-shifted before they add).

States may be tensors, Python ints (row counters) or None (an optional state not kept). Child accumulators (the parts of a fused pass)
are merged with their parent. Across ranks, :func:`reduce_over_ranks` all-gathers every rank's packed
state and merges the shares in rank order on every rank: exact, deterministic and identical
everywhere, whatever the reduction.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeVar

import torch

from nc_audit.distributed import DistributedContext

Reduction = Literal["sum", "custom"]
A = TypeVar("A", bound="Accumulator")


class Accumulator:
    """Base of a streaming accumulator: declare ``reductions`` (state name → reduction) and, where
    parts of a fused pass are accumulators of their own, ``children`` (attribute names, None allowed)."""

    reductions: ClassVar[Mapping[str, Reduction]] = {}
    children: ClassVar[tuple[str, ...]] = ()

    def check_mergeable(self, other: Any) -> None:
        """Raise ValueError when ``other`` cannot be merged into this accumulator: by default when a tensor
        state differs in shape; accumulators with settings that must agree (a global mean) add theirs."""
        for name in self.reductions:
            mine, theirs = getattr(self, name), getattr(other, name)
            if (
                isinstance(mine, torch.Tensor)
                and isinstance(theirs, torch.Tensor)
                and mine.shape != theirs.shape
            ):
                raise ValueError(
                    f"cannot merge {type(self).__name__}.{name} of shape {tuple(theirs.shape)} "
                    f"into {tuple(mine.shape)}"
                )

    def combine(self, other: Any) -> None:
        """Merge ``other``'s "custom" states into this one's (only accumulators that declare some)."""
        raise NotImplementedError(f"{type(self).__name__} declares no custom reduction")


def _parts(accumulator: Accumulator) -> Iterator[Accumulator]:
    """The accumulator and its children, depth first (absent children skipped)."""
    yield accumulator
    for name in accumulator.children:
        child = getattr(accumulator, name)
        if child is not None:
            yield from _parts(child)


def merge(target: A, other: A) -> A:
    """Add ``other``'s rows to ``target`` in place (another worker's or rank's share); returns ``target``."""
    for mine, theirs in zip(_parts(target), _parts(other), strict=True):
        if type(mine) is not type(theirs):
            raise TypeError(f"cannot merge {type(theirs).__name__} into {type(mine).__name__}")
        mine.check_mergeable(theirs)
        if any(kind == "custom" for kind in mine.reductions.values()):
            mine.combine(theirs)
        for name, kind in mine.reductions.items():
            if kind == "sum":
                value = getattr(theirs, name)
                if value is None:
                    continue
                if isinstance(value, torch.Tensor):
                    getattr(mine, name).add_(value.to(getattr(mine, name).device))
                else:
                    setattr(mine, name, getattr(mine, name) + value)
    return target


def merge_all(accumulators: Sequence[A]) -> A:
    """The first accumulator with every other one merged into it, in order (the workers of one pass)."""
    first, *others = accumulators
    for other in others:
        merge(first, other)
    return first


def pack(accumulator: Accumulator) -> torch.Tensor:
    """Every state of the accumulator and its children as one flat float64 tensor (for communication;
    integer counts are exact below 2⁵³ rows)."""
    flat = []
    for part in _parts(accumulator):
        for name in part.reductions:
            value = getattr(part, name)
            if value is None:  # an optional state this accumulator does not keep (e.g. no scatter)
                continue
            if isinstance(value, torch.Tensor):
                flat.append(value.detach().reshape(-1).to(torch.float64))
            else:
                flat.append(torch.tensor([float(value)], dtype=torch.float64))
    device = next((t.device for t in flat if t.device.type != "cpu"), torch.device("cpu"))
    return torch.cat([t.to(device) for t in flat])


def unpack(template: A, flat: torch.Tensor) -> A:
    """A copy of ``template`` (same shapes, devices and settings) holding the state :func:`pack` gave."""
    result = copy.deepcopy(template)
    offset = 0
    for part in _parts(result):
        for name in part.reductions:
            value = getattr(part, name)
            if value is None:
                continue
            if isinstance(value, torch.Tensor):
                size = value.numel()
                chunk = flat[offset : offset + size].reshape(value.shape)
                setattr(part, name, chunk.to(device=value.device, dtype=value.dtype).clone())
            else:
                size = 1
                setattr(part, name, type(value)(round(float(flat[offset]))))
            offset += size
    if offset != flat.numel():
        raise ValueError(f"packed state has {flat.numel()} numbers, the accumulator {offset}")
    return result


def reduce_over_ranks(accumulator: A, ctx: DistributedContext) -> A:
    """The accumulator of all ranks' rows, identical on every rank: an all-gather of the packed states,
    merged in rank order. One process: ``accumulator`` itself."""
    if not ctx.distributed:
        return accumulator
    shares = [unpack(accumulator, flat) for flat in ctx.gather(pack(accumulator))]
    return merge_all(shares)
