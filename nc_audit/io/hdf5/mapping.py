"""The regions a virtual dataset maps, read from its creation property list (nothing is read from data).

A virtual dataset (VDS) is a list of mappings, each a selection of the VDS (``get_virtual_vspace``) and
a selection of a source dataset (``get_virtual_srcspace``). Whatever no mapping covers reads as the fill
value, so :func:`unmapped` proves that the mappings cover every element. Selections are taken as boxes
(hyperslab blocks, single points); more than MAX_BLOCKS of them, or an unlimited selection, is refused.
"""

from __future__ import annotations

import itertools

import h5py
import numpy as np

#: Boxes (hyperslab blocks or points) accepted in the selections of one virtual dataset, all mappings
#: together: a finer mapping is refused (checking its coverage, and reading it, costs per box).
MAX_BLOCKS = 4096


class MappingError(ValueError):
    """A selection nc-audit does not accept (unlimited, too many boxes, unknown kind)."""


def boxes(space: h5py.h5s.SpaceID, budget: int) -> np.ndarray:
    """The selection of ``space`` as inclusive boxes (n, 2, rank): [start, end] per box, at most
    ``budget`` of them (else MappingError)."""
    rank = space.get_simple_extent_ndims()
    kind = space.get_select_type()
    if kind == h5py.h5s.SEL_NONE:
        return np.zeros((0, 2, rank), np.int64)
    if kind == h5py.h5s.SEL_ALL:
        dims = np.asarray(space.shape, np.int64)
        return np.stack([np.zeros(rank, np.int64), dims - 1])[None]
    if kind == h5py.h5s.SEL_POINTS:
        count = space.get_select_elem_npoints()
        if count > budget:
            raise MappingError(f"more than {budget} mapped points")
        points = np.asarray(space.get_select_elem_pointlist(), np.int64).reshape(count, rank)
        return np.stack([points, points], axis=1)
    if kind == h5py.h5s.SEL_HYPERSLABS:
        if space.is_regular_hyperslab():
            _, stride, count, block = space.get_regular_hyperslab()
            if any(int(n) >= h5py.h5s.UNLIMITED for n in (*count, *block, *stride)):
                raise MappingError("an unlimited mapping")
        count = space.get_select_hyper_nblocks()
        if count > budget:
            raise MappingError(f"more than {budget} mapped blocks")
        return np.asarray(space.get_select_hyper_blocklist(), np.int64).reshape(count, 2, rank)
    raise MappingError(f"a selection of unknown kind {kind}")


def _intervals_cover(starts: np.ndarray, ends: np.ndarray, size: int) -> bool:
    """Whether the half-open intervals [starts, ends) cover [0, size)."""
    if size <= 0:
        return True
    if starts.size == 0:
        return False
    order = np.argsort(starts, kind="stable")
    starts, reach = starts[order], np.maximum.accumulate(ends[order])
    return bool(starts[0] <= 0 and reach[-1] >= size and np.all(starts[1:] <= reach[:-1]))


def _covers(found: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Whether the inclusive boxes ``found`` (n, 2, rank) cover every element of ``shape``."""
    if not shape:
        return bool(found.shape[0] > 0)
    starts, ends = found[:, 0, 0], found[:, 1, 0] + 1
    if len(shape) == 1:
        return _intervals_cover(starts, ends, shape[0])
    edges = np.unique(np.clip(np.concatenate([[0, shape[0]], starts, ends]), 0, shape[0]))
    for low, high in itertools.pairwise(edges):
        inside = found[(starts <= low) & (ends >= high)]
        if inside.shape[0] == 0 or not _covers(inside[:, :, 1:], shape[1:]):
            return False
    return True


def unmapped(mapped: list[np.ndarray], shape: tuple[int, ...]) -> bool:
    """Whether some element of a VDS of ``shape`` lies outside every box of ``mapped``."""
    if 0 in shape:
        return False
    rank = len(shape)
    found = np.concatenate(mapped) if mapped else np.zeros((0, 2, rank), np.int64)
    return not _covers(found, shape)
