"""SecondPass: one worker's share of the second streaming pass, within a memory budget independent of C.

Per row the pass needs the head's decision argmax_c (W h + b)_c, the nearest class mean
argmin_c ‖h − μ_c‖² (NC4, accuracy) and the projections (h − μ_y)·v_k onto Σ_B's eigenvectors (NC1).
Rows are first centred on the global mean in float64, x = h − μ_G (a reused buffer), which keeps every
term on the scale of the class means around it:

- decisions (:mod:`nc_audit.engine.decisions`): scores x·a_c + β_c a class tile at a time, by a float32
  GEMM where the device does true float32; a row whose float32 margin between the best and the second
  best score is below the rigorous error bound of :mod:`nc_audit.engine.decision_bound` is re-decided
  in float64, so NC4 and accuracy equal the float64 decisions exactly. A fixed number of the least
  certain rows per block is re-decided (no device read per block); rows beyond it are counted, and a
  chunk with any is recounted in float64 once its blocks are done (:meth:`SecondPass.update_rows`);
- NC1's projections (x − m̄_y)·v stay float64 (they feed a statistic): one float64 GEMM onto the
  r ≤ min(C − 1, d) eigenvectors.

Memory: the score buffer is rows × tile ≤ a byte budget (:func:`nc_audit.engine.blocks.product_shape`),
the projections rows × r ≤ rows × d, and the read-only tables (W, the means, their float32 copy, V) are
shared by every worker's replica, never copied.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from nc_audit.engine import decisions
from nc_audit.engine.accumulators import DecisionCounter, WithinProjection
from nc_audit.engine.blocks import Blockwise, count_nonfinite, product_shape
from nc_audit.engine.decision_sample import DecisionSample
from nc_audit.engine.sample_stats import SampleLevelStats
from nc_audit.engine.state import Accumulator, Reduction

#: Rows re-decided in float64 per block: the least certain 1/REDECIDE_SHARE of them (at least REDECIDE_MIN).
REDECIDE_SHARE, REDECIDE_MIN = 64, 8


class SecondPass(Blockwise, Accumulator):
    """Counts NC4 decisions, NC1 projections and (optionally) the sample-level scatters of blocks;
    replicas for other workers share the read-only tables, start from zero sums and merge back through
    the merge protocol (:func:`nc_audit.engine.state.merge`: the parts are its children)."""

    reductions: ClassVar[Mapping[str, Reduction]] = {"nonfinite": "sum", "uncertain": "sum", "spilled": "sum"}
    children = ("counter", "projection", "sample_stats")

    def __init__(
        self,
        counter: DecisionCounter,
        global_mean: torch.Tensor,
        sample_stats: SampleLevelStats | None = None,
        projection: WithinProjection | None = None,
        *,
        decision_sample: DecisionSample | None = None,
        float32: bool | None = None,
    ) -> None:
        self.counter, self.sample_stats, self.projection = counter, sample_stats, projection
        self.decision_sample = decision_sample
        self.device = counter.class_means.device
        mu = global_mean.to(self.device, torch.float64)  # (d,)
        use32 = decisions.float32_allowed(self.device) if float32 is None else float32
        self.tables = decisions.DecisionTables(
            counter.head_weight, counter.head_bias, counter.class_means, mu, use32
        )
        self._candidates = counter.candidate_classes.to(self.device)
        d = int(mu.shape[0])
        if projection is not None:
            V = projection.basis.to(self.device, torch.float64)  # (r, d)
            self._basis = V
            self._mean_projections = (projection.class_means.to(self.device) - mu) @ V.T  # (C_head, r)
        self._global_mean = mu
        self._same_centre = sample_stats is not None and torch.equal(sample_stats.global_mean, mu)
        itemsize = 4 if use32 else 8
        self.rows_per_block, width = product_shape(d, self.tables.columns, self.device, itemsize)
        self._scratch_size = self.rows_per_block * width if use32 else 0
        self._first_row = 0
        self._share = REDECIDE_SHARE  # this worker re-decides 1/_share of each block's rows (at least 8)
        self.recounts_chunks = self.device.type == "cpu"  # spilled chunks recounted as they come
        self.nonfinite = torch.zeros((), dtype=torch.int64, device=self.device)  # rows with NaN/Inf
        self.uncertain = torch.zeros((), dtype=torch.int64, device=self.device)  # below the float32 bound
        self.spilled = torch.zeros((), dtype=torch.int64, device=self.device)  # of those, chunk recounted
        self._allocate()

    def _allocate(self) -> None:
        """This worker's own block buffers."""
        n, d = self.rows_per_block, int(self._global_mean.shape[0])
        kw: dict[str, Any] = {"device": self.device}
        self._centred = torch.empty(n, d, dtype=torch.float64, **kw)
        self._x32 = torch.empty(n, d, dtype=torch.float32, **kw) if self.tables.float32 else None
        self._scratch = torch.empty(self._scratch_size, dtype=torch.float32, **kw)
        r = int(self._basis.shape[0]) if self.projection is not None else 0
        self._projected = torch.empty(n, r, dtype=torch.float64, **kw)

    @property
    def nonfinite_rows(self) -> int:
        """Rows holding NaN or ±Inf (reads the device counter: call after the pass)."""
        return int(self.nonfinite)

    @property
    def spilled_rows(self) -> int:
        """Doubtful rows beyond their block's re-decision capacity (call after the pass): their chunks
        were recounted in float64 when ``recounts_chunks``, else the pass must be."""
        return int(self.spilled)

    def replica(self) -> SecondPass:
        """A copy for another worker: its own zero sums and buffers, the same read-only tables."""
        return self._copy(zero=True)

    def __deepcopy__(self, memo: dict[int, Any]) -> SecondPass:
        """A copy with the same sums (:func:`nc_audit.engine.state.unpack`); the tables are shared."""
        return self._copy(zero=False)

    def _copy(self, zero: bool) -> SecondPass:
        def state(tensor: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(tensor) if zero else tensor.clone()

        new = copy.copy(self)
        counter = self.counter
        new.counter = dataclasses.replace(counter, samples=0 if zero else counter.samples)
        new.counter.decisions = state(counter.decisions)
        if self.projection is not None:
            new.projection = copy.copy(self.projection)
            new.projection.squared = state(self.projection.squared)
            new.projection.samples = 0 if zero else self.projection.samples
        if self.sample_stats is not None:
            new.sample_stats = copy.copy(self.sample_stats)
            new.sample_stats.counts = state(self.sample_stats.counts)
            new.sample_stats.gram = state(self.sample_stats.gram)
        new.nonfinite, new.uncertain, new.spilled = (
            state(t) for t in (self.nonfinite, self.uncertain, self.spilled)
        )
        new._allocate()
        return new

    def update_rows(self, features: torch.Tensor, labels: torch.Tensor, first_row: int) -> None:
        """:meth:`update` for rows first_row.. of the split (their decisions sampled by row number).

        On CPU, after the chunk (never inside its per-block loop) one read says whether any block had
        more doubtful rows than it re-decided; if so the chunk's decisions are recounted in float64
        from the rows still in hand, and this worker re-decides a larger share from then on. On an
        accelerator (where a read waits for the device) the pass is recounted instead, once, after
        it (:func:`nc_audit.engine.passes.count_decisions`)."""
        self._first_row = first_row
        if not (self.tables.float32 and self.recounts_chunks):
            self.update(features, labels)
            return
        decisions, samples, spilled = (
            self.counter.decisions.clone(),
            self.counter.samples,
            self.spilled.clone(),
        )
        self.update(features, labels)
        if int(self.spilled - spilled):  # one read per chunk
            self.counter.decisions.copy_(decisions)
            self.counter.samples = samples
            self._recount(features, labels)
            self._share = max(1, self._share // 4)

    def _recount(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Count the decisions of a chunk's rows again, by the float64 route."""
        step = self.rows_per_block
        for begin in range(0, int(labels.shape[0]), step):
            H = features[begin : begin + step].to(self.device, non_blocking=True)  # (n, d)
            y = labels[begin : begin + step].to(self.device, torch.long, non_blocking=True)  # (n,)
            self.block_start = begin
            centred = self._centred[: int(y.shape[0])].copy_(H).sub_(self._global_mean)
            self._decide(centred, None, y)

    def _update_block(self, H: torch.Tensor, y: torch.Tensor) -> None:
        n = int(y.shape[0])
        centred = self._centred[:n].copy_(H).sub_(self._global_mean)  # (n, d) x = h − μ_G, float64
        # A row norm is finite iff every entry is (and its squares do not overflow). NaN/Inf rows are only
        # counted, on the device: the pass fails with the count, so the decisions and sums they spoil are
        # never used. The norms also scale the float32 decisions' error bound.
        norms = torch.linalg.vector_norm(centred, dim=1)  # (n,) float64
        self.nonfinite += count_nonfinite(norms)
        self._decide(centred, norms, y)
        if self.projection is not None:
            P = torch.mm(centred, self._basis.T, out=self._projected[:n])  # (n, r)
            self.projection.add_projected(P - self._mean_projections[y])
        if self.sample_stats is not None:
            if self._same_centre:  # h − μ_G is already in hand: not computed twice
                self.sample_stats.update_centred(centred, y)
            else:  # K_Z centred on another split's mean (measure --split test); rows already validated
                self.sample_stats.update_centred(H.to(torch.float64) - self.sample_stats.global_mean, y)

    def _decide(self, centred: torch.Tensor, norms: torch.Tensor | None, y: torch.Tensor) -> None:
        """Count the decisions of the block's rows (or of its sampled rows); without ``norms``, by the
        float64 route."""
        if self.decision_sample is not None:
            begin = self._first_row + self.block_start
            positions = self.decision_sample.within(begin, begin + int(y.shape[0]))
            if positions.shape[0] == 0:
                return
            index = torch.from_numpy(positions).to(self.device, non_blocking=True)
            centred, y = centred.index_select(0, index), y.index_select(0, index)
            norms = None if norms is None else norms.index_select(0, index)
        if norms is not None and self.tables.float32:
            predicted, nearest = self._decide32(centred, norms)
        else:
            predicted, nearest = self.tables.decide64(centred)
        self.counter.tally(predicted, self._candidates[nearest], y)

    def _decide32(self, x: torch.Tensor, norms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float32 decisions of rows x (m, d) float64 with norms ‖x‖ (m,), the least certain re-decided
        in float64."""
        m = int(x.shape[0])
        assert self._x32 is not None
        x32 = self._x32[:m].copy_(x)
        results = self.tables.top2_32(x32, self._scratch)
        certain = None
        for problem, (best, second, _) in zip(self.tables.problems, results, strict=True):
            ok = problem.bound.certified(best, second, norms)
            certain = ok if certain is None else certain & ok
        assert certain is not None
        doubtful = certain.logical_not()
        count = doubtful.sum()
        capacity = min(m, max(REDECIDE_MIN, m // self._share))
        # the capacity's worth of rows, every doubtful one first (a fixed size: no device read)
        chosen = torch.topk(doubtful.to(torch.float32), capacity, sorted=False).indices
        redecided = self.tables.decide64(x.index_select(0, chosen))
        self.uncertain += count
        self.spilled += (count - capacity).clamp_(min=0)
        return tuple(  # type: ignore[return-value]  # the tables' two problems: a pair, not counted by mypy
            index.index_copy(0, chosen, exact)
            for (_, _, index), exact in zip(results, redecided, strict=True)
        )
