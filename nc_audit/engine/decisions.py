"""The second pass's two argmax problems (the head's classifier, the nearest class mean), tiled over classes.

Both are argmax_c x·a_c + β_c over the rows x = h − μ_G (float64):

    head:  a_c = w_c,  β_c = b_c + w_c·μ_G                       (W h + b = W x + b + W μ_G)
    means: a_k = m̄_k = μ_k − μ_G,  β_k = −‖m̄_k‖²/2              (argmin ‖h − μ_k‖² = argmax x·m̄_k − ‖m̄_k‖²/2)

:class:`DecisionTables` holds their read-only tensors once for every worker (float64, and a float32 copy
for the float32 route). Scores are made a class tile at a time into a buffer whose size is fixed by a
byte budget (:func:`nc_audit.engine.blocks.product_shape`), never rows × C at once, and reduced to a
running (best, second best, index): memory does not grow with C. The float32 route's decisions are
certified by :class:`nc_audit.engine.decision_bound.MarginBound`; the rest is re-decided by
:meth:`DecisionTables.decide64`, which is also the float64 route.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nc_audit.engine.blocks import product_budget
from nc_audit.engine.decision_bound import MarginBound, merge_argmax, merge_top2, top2

Top2 = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Problem:
    """One argmax problem: vectors (k, d) float64, biases (k,) float64, its columns in the float32 stack."""

    vectors: torch.Tensor
    biases: torch.Tensor
    start: int
    bound: MarginBound


def float32_allowed(device: torch.device) -> bool:
    """True where a float32 GEMM is a true float32 GEMM (no TF32/bfloat16 shortcut): the error bound
    of :mod:`nc_audit.engine.decision_bound` assumes u = 2⁻²⁴."""
    if torch.get_float32_matmul_precision() != "highest":
        return False
    if device.type == "cuda":
        return not torch.backends.cuda.matmul.allow_tf32
    return device.type == "cpu"


class DecisionTables:
    """Read-only tensors of the decisions, shared by every worker (never copied per worker)."""

    def __init__(
        self,
        head_weight: torch.Tensor,
        head_bias: torch.Tensor | None,
        class_means: torch.Tensor,
        global_mean: torch.Tensor,
        float32: bool,
    ) -> None:
        mu = global_mean.to(torch.float64)  # (d,)
        W = head_weight.to(mu.device, torch.float64)  # (C, d): no copy when already float64 there
        M = class_means.to(mu.device, torch.float64) - mu  # (C', d)
        head_b = W @ mu + (head_bias.to(mu.device, torch.float64) if head_bias is not None else 0.0)
        means_b = -0.5 * (M * M).sum(1)
        self.feature_dim = int(mu.shape[0])
        self.columns = int(W.shape[0] + M.shape[0])
        self.problems = (self._problem(W, head_b, 0), self._problem(M, means_b, int(W.shape[0])))
        self._tiles: dict[int, list[tuple[int, int, list[tuple[int, int, int, int]]]]] = {}
        self.vectors32: torch.Tensor | None = None
        self.biases32: torch.Tensor | None = None
        if float32:  # one (C + C', d) float32 stack of both problems' vectors
            self.vectors32 = torch.empty(
                self.columns, self.feature_dim, dtype=torch.float32, device=mu.device
            )
            self.biases32 = torch.empty(self.columns, dtype=torch.float32, device=mu.device)
            for problem in self.problems:
                stop = problem.start + problem.vectors.shape[0]
                self.vectors32[problem.start : stop].copy_(problem.vectors)
                self.biases32[problem.start : stop].copy_(problem.biases)

    def _problem(self, vectors: torch.Tensor, biases: torch.Tensor, start: int) -> Problem:
        norm = float(torch.linalg.vector_norm(vectors, dim=1).max()) if vectors.shape[0] else 0.0
        bias = float(biases.abs().max()) if biases.shape[0] else 0.0
        return Problem(vectors, biases, start, MarginBound.of(self.feature_dim, norm, bias))

    @property
    def float32(self) -> bool:
        return self.vectors32 is not None

    def tiles(self, width: int) -> list[tuple[int, int, list[tuple[int, int, int, int]]]]:
        """Column tiles of the float32 stack: (begin, end, [(problem, from, to, first class)]) with
        from..to the problem's columns within the tile."""
        result = []
        for begin in range(0, self.columns, width):
            end = min(self.columns, begin + width)
            parts = []
            for number, problem in enumerate(self.problems):
                lo = max(begin, problem.start)
                hi = min(end, problem.start + problem.vectors.shape[0])
                if lo < hi:
                    parts.append((number, lo - begin, hi - begin, lo - problem.start))
            result.append((begin, end, parts))
        return result

    def top2_32(self, x32: torch.Tensor, scratch: torch.Tensor) -> list[Top2]:
        """Per problem, the float32 (best, second best, index) of rows x32 (m, d), scored a class tile
        at a time into ``scratch`` (tiles as wide as it holds for m rows)."""
        assert self.vectors32 is not None and self.biases32 is not None
        m = max(1, int(x32.shape[0]))
        width = max(1, min(self.columns, int(scratch.shape[0]) // m))
        if width not in self._tiles:
            self._tiles[width] = self.tiles(width)
        tiles = self._tiles[width]
        running: list[Top2 | None] = [None] * len(self.problems)
        for begin, end, parts in tiles:
            scores = scratch[: m * (end - begin)].view(m, end - begin)
            torch.mm(x32, self.vectors32[begin:end].T, out=scores)
            scores += self.biases32[begin:end]
            for number, lo, hi, first in parts:
                running[number] = merge_top2(running[number], top2(scores[:, lo:hi]), first)
        return [value for value in running if value is not None]

    def decide64(self, x: torch.Tensor, budget: int | None = None) -> list[torch.Tensor]:
        """Per problem, the float64 argmax (first index on ties) of rows x (m, d) float64, one class tile
        of at most ``budget`` bytes of scores at a time."""
        m = max(1, int(x.shape[0]))
        budget = product_budget(x.device) if budget is None else budget
        width = max(1, budget // (8 * m))
        decided = []
        for problem in self.problems:
            running = None
            for begin in range(0, int(problem.vectors.shape[0]), width):
                end = min(int(problem.vectors.shape[0]), begin + width)
                scores = torch.mm(x, problem.vectors[begin:end].T)  # (m, ≤ width)
                scores += problem.biases[begin:end]
                running = merge_argmax(running, scores.max(1), begin)
            assert running is not None
            decided.append(running[1])
        return decided
