"""Sample-level matrix information of a classifier's last layer, without any N×N matrix when d < N.

docs/METRICS.md "Sample level": K_Z = Gram of the centred features z_i = h_i − μ_G (rows normalised to ẑ_i),
K_Y = Gram of the labels' head rows (w_{y_1}, …, w_{y_N}), K_Y1 = [y_i = y_j]; H(K) = −Σ λ log λ,
λ = eig(K/N). Keys: h_samples = H(K_Z), h_labels = H(K_Y), mi_samples, mir_samples, hdr_samples
(MI, MIR, HDR of K_Z and K_Y), mi_samples_onehot = MI(K_Z, K_Y1). Song et al. (2024), arXiv 2406.03999.

Routes (docs/PERFORMANCE.md, "Which route for which matrix"); `SampleLevelResult.route` names the one used:
- h_samples       "dual": eig(ẐᵀẐ) (d×d), or "primal": eig(ẐẐᵀ) when N < d and the rows are re-read.
- h_labels        "counts": K_Y's nonzero spectrum is that of diag(√n_c) K_W diag(√n_c) (C×C), K_W the
                  Gram of the head rows; likewise H(K_Y1) = −Σ_c p_c log p_c, p_c = n_c/N.
- h_joint         K_Z∘K_Y. "khatri-rao": with K_W = L Lᵀ (L: C×r), eig(Σ_c S_c ⊗ l_c l_cᵀ) (side d·r),
                  S_c = Σ_{y_i=c} ẑ_i ẑ_iᵀ; "dense": the N×N matrix when N is the smaller side; "slq".
- h_joint_onehot  K_Z∘K_Y1 is block-diagonal by class. "class-blocks": eig(S_c), or of Ẑ_c Ẑ_cᵀ where
                  n_c < d, per class; "slq".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from nc_audit.core.errors import InputError
from nc_audit.core.linalg import PINV_RTOL, entropy_from_eigenvalues, unit_rows
from nc_audit.metrics.information import ratio_metrics
from nc_audit.metrics.sample_sums import SampleSums, group_by_class
from nc_audit.metrics.slq import MAX_PROBES, ClassHadamardOperator, slq_entropy

__all__ = ["SAMPLE_LEVEL_KEYS", "SampleLevelResult", "sample_level_metrics"]

#: Largest matrix side that "auto" eigensolves (8192: 0.5 GiB in float64, tens of seconds on a CPU).
MAX_EIGH_DIM = 8192
ESTIMATORS = ("auto", "exact", "slq")
SAMPLE_LEVEL_KEYS = ("h_samples", "h_labels", "mi_samples", "mir_samples", "hdr_samples", "mi_samples_onehot")

Chunks = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


@dataclass
class SampleLevelResult:
    """The six metrics (None where undefined), the route of each entropy (h_samples, h_labels, h_joint,
    h_joint_onehot), notes for the report and, for SLQ, 95% half-widths by metric key and probes used."""

    metrics: dict[str, float | None]
    route: dict[str, str]
    notes: list[str] = field(default_factory=list)
    interval: dict[str, float] = field(default_factory=dict)
    probes: int = 0


@dataclass(frozen=True)
class _Option:
    """One exact route of a joint entropy: its source ("scatters" | "rows"), eigensolve cost (flops),
    whether it fits the memory budget and MAX_EIGH_DIM, and why not."""

    route: str
    source: str
    cost: float
    fits: bool
    why: str


@dataclass(frozen=True)
class _Plan:
    """How one joint entropy is computed: its key, the matrix (for notes), the chosen exact route (None:
    SLQ or not at all), why no exact route fits, and the label Gram (None: the one-hot K_Y1)."""

    key: str
    matrix: str
    option: _Option | None
    why: str
    label_gram: torch.Tensor | None


def _choose(estimator: str, options: list[_Option]) -> tuple[_Option | None, str]:
    """The cheapest usable exact route ("exact": any; "auto": one that fits), or None and the reason."""
    if estimator == "slq":
        return None, ""
    usable = [o for o in options if o.fits or estimator == "exact"]
    if usable:
        return min(usable, key=lambda o: o.cost), ""
    if estimator == "exact":
        raise InputError("estimator='exact' needs per-class scatters (per_class=True) or chunks to re-read")
    return None, "; ".join(o.why for o in options) or "per-class scatters were not kept"


def _entropy(eigenvalues: torch.Tensor, N: int) -> float:
    """Σ −λ log λ, λ = eigenvalue / N, over all given eigenvalues (any shape)."""
    return float(entropy_from_eigenvalues(eigenvalues.flatten(), float(N)))


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def _smaller_side(Z: torch.Tensor) -> torch.Tensor:
    """ZZᵀ or ZᵀZ, whichever is smaller (the same nonzero spectrum). (n, d) -> (m, m), m = min(n, d)."""
    return Z @ Z.T if Z.shape[0] < Z.shape[1] else Z.T @ Z


def _label_factor(G: torch.Tensor) -> torch.Tensor:
    """L (C×r) with G = L Lᵀ from the eigenpairs above PINV_RTOL·λ_max; r = numerical rank of G."""
    eigenvalues: torch.Tensor
    V: torch.Tensor
    eigenvalues, V = torch.linalg.eigh(G)  # (C,), (C, C)
    keep = eigenvalues > PINV_RTOL * eigenvalues[-1].clamp_min(0.0)
    return V[:, keep] * eigenvalues[keep].sqrt()  # (C, r)


def _khatri_rao_entropy(scatters: torch.Tensor, L: torch.Tensor, N: int) -> float:
    """H(K_Z∘K_Y): eigenvalues of Σ_c S_c ⊗ l_c l_cᵀ / N (side d·r). S: (C, d, d), L: (C, r)."""
    C, d, _ = scatters.shape
    r = L.shape[1]
    outer = (L[:, :, None] * L[:, None, :]).reshape(C, r * r)  # (C, r²) rows l_c ⊗ l_c
    B = (outer.T @ scatters.reshape(C, d * d)).reshape(r, r, d, d)  # (p, q, a, b)
    B = B.permute(2, 0, 3, 1).reshape(d * r, d * r)  # (d·r, d·r): row (a, p), column (b, q)
    return _entropy(torch.linalg.eigvalsh(B), N)


def _dense_joint_entropy(blocks: list[torch.Tensor], G: torch.Tensor, N: int) -> float:
    """H(K_Z∘K_Y) from the N×N matrix, rows grouped by class. blocks: (n_c, d) each; G: (C, C)."""
    y = torch.cat([torch.full((B.shape[0],), c, device=G.device) for c, B in enumerate(blocks)])  # (N,)
    Z_hat = torch.cat(blocks)  # (N, d)
    K = Z_hat @ Z_hat.T  # (N, N)
    K *= G[y][:, y]
    return _entropy(torch.linalg.eigvalsh(K), N)


def _load_class_rows(stats: SampleSums, chunks: Chunks, dtype: torch.dtype) -> list[torch.Tensor]:
    """Re-read the data: ẑ_i grouped by class, one (n_c, d) block per class present in the statistics."""
    parts: dict[int, list[torch.Tensor]] = {}
    for features, labels in chunks():
        Z_hat, y = stats.centred_unit_rows(features, labels)  # (n, d), (n,)
        for c, rows in group_by_class(y):
            parts.setdefault(c, []).append(Z_hat[rows].to(dtype))
    seen = torch.zeros_like(stats.counts)  # (C,)
    for c, p in parts.items():
        seen[c] = sum(B.shape[0] for B in p)
    if not torch.equal(seen, stats.counts):
        raise InputError(
            f"chunks() yielded {int(seen.sum())} samples whose class counts differ from the statistics"
        )
    return [torch.cat(p) for _, p in sorted(parts.items())]


def _exact_options(
    stats: SampleSums, n_c: torch.Tensor, r: int, budget_bytes: int, has_chunks: bool
) -> tuple[list[_Option], list[_Option]]:
    """The exact routes of H(K_Z∘K_Y) and of H(K_Z∘K_Y1) with their costs (docs/PERFORMANCE.md table)."""
    C_p, d, N = int(n_c.numel()), stats.feature_dim, stats.num_samples
    head, onehot = [], []
    if stats.per_class:
        scatter_bytes = 8 * C_p * d * d
        kr_bytes = scatter_bytes + 16 * (d * r) ** 2
        kr_cost = C_p * float(d * r) ** 2 + float(d * r) ** 3  # build Σ_c S_c ⊗ l_c l_cᵀ, then eigvalsh
        kr_fits = kr_bytes <= budget_bytes and d * r <= MAX_EIGH_DIM
        why = f"the Khatri–Rao route needs {_gib(kr_bytes)} and an eigensolve of side d·r = {d * r}"
        head.append(_Option("khatri-rao", "scatters", kr_cost, kr_fits, why))
        why = f"the per-class scatters need {_gib(scatter_bytes)}"
        onehot.append(
            _Option("class-blocks", "scatters", C_p * float(d) ** 3, scatter_bytes <= budget_bytes, why)
        )
    if has_chunks:
        dense_cost = 2.0 * N * N * d + float(N) ** 3  # build ẐẐᵀ, then eigvalsh
        dense_fits = 16 * N * N <= budget_bytes and N <= MAX_EIGH_DIM
        head.append(
            _Option("dense", "rows", dense_cost, dense_fits, f"the N×N matrix needs {_gib(16 * N * N)}")
        )
        sides = n_c.clamp(max=d)  # (C_p,) per class the smaller side of Ẑ_c
        rows_cost = float((2 * n_c * d * sides + sides**3).sum())
        onehot.append(_Option("class-blocks", "rows", rows_cost, True, ""))
    return head, onehot


def sample_level_metrics(
    stats: SampleSums,
    head_weight: torch.Tensor,
    *,
    estimator: str = "auto",
    budget_bytes: int = 2**31,
    chunks: Chunks | None = None,
    seed: int = 0,
    slq_tol: float = 1e-3,
    slq_max_probes: int = MAX_PROBES,
) -> SampleLevelResult:
    """h_samples, h_labels, mi_samples, mir_samples, hdr_samples, mi_samples_onehot (docs/METRICS.md).

    H(K_Z) and the label entropies are always exact. Each joint entropy takes the cheapest exact route
    (module docstring; docs/PERFORMANCE.md) that fits `budget_bytes` and MAX_EIGH_DIM ("auto"), any exact
    route ("exact"), or stochastic Lanczos quadrature to ±`slq_tol` at 95% ("slq", or "auto" with a note
    when nothing exact fits). The row routes (primal, dense, rows-based class blocks, SLQ) re-read the data
    once through `chunks()`, which yields (features (n, d), labels (n,)), and hold the N unit rows in
    memory; without chunks a joint entropy with no route is None, with a note. head_weight: (C, d).
    """
    if estimator not in ESTIMATORS:
        raise InputError(f"estimator must be one of {', '.join(ESTIMATORS)}, not {estimator!r}")
    C, d, N = stats.num_classes, stats.feature_dim, stats.num_samples
    if tuple(head_weight.shape) != (C, d):
        raise InputError(f"head weight has shape {tuple(head_weight.shape)}, expected ({C}, {d})")
    if N == 0:
        raise InputError("sample-level metrics need at least one sample; the statistics are empty")
    if estimator == "slq" and chunks is None:
        raise InputError("estimator='slq' needs chunks() to re-read the features")
    present = stats.counts > 0  # (C,)
    n_c = stats.counts[present]  # (C_p,)
    U = unit_rows(head_weight.to(stats.device))[present]  # (C_p, d)
    G = U @ U.T  # (C_p, C_p) K_W of the classes present
    L = _label_factor(G)  # (C_p, r)
    scaled = n_c.sqrt()[:, None] * G * n_c.sqrt()  # (C_p, C_p) diag(√n) K_W diag(√n)
    h_labels = _entropy(torch.linalg.eigvalsh(scaled), N)
    h_labels_onehot = float(torch.special.entr(n_c / N).sum())

    head_options, onehot_options = _exact_options(stats, n_c, L.shape[1], budget_bytes, chunks is not None)
    plans = [
        _Plan("h_joint", "K_Z∘K_Y", *_choose(estimator, head_options), label_gram=G),
        _Plan("h_joint_onehot", "K_Z∘K_Y1", *_choose(estimator, onehot_options), label_gram=None),
    ]
    primal = chunks is not None and N < d and 8 * N * N <= budget_bytes
    exact_rows = primal or any(plan.option is not None and plan.option.source == "rows" for plan in plans)
    need_rows = exact_rows or (chunks is not None and any(plan.option is None for plan in plans))
    dtype = torch.float64 if exact_rows else torch.float32  # SLQ alone works in float32 (docs/PERFORMANCE.md)
    blocks = _load_class_rows(stats, chunks, dtype) if need_rows and chunks is not None else []

    result = SampleLevelResult({}, {"h_samples": "primal" if primal else "dual", "h_labels": "counts"})
    gram_side = _smaller_side(torch.cat(blocks)) if primal else stats.dual_gram  # (N, N) | (d, d)
    h_samples = _entropy(torch.linalg.eigvalsh(gram_side), N)
    joints: dict[str, float | None] = {}
    for plan in plans:
        key, name, option, why, label_gram = plan.key, plan.matrix, plan.option, plan.why, plan.label_gram
        result.route[key] = (
            option.route if option is not None else "slq" if chunks is not None else "unavailable"
        )
        if option is None and chunks is None:
            joints[key] = None
            result.notes.append(f"H({name}) not computed ({why}); pass chunks to re-read the data for SLQ")
        elif option is None:
            operator = ClassHadamardOperator(blocks, label_gram, N)
            est = slq_entropy(
                operator, N, tol=slq_tol, max_probes=slq_max_probes, seed=seed, device=stats.device
            )
            joints[key], result.interval[key] = est.estimate, est.half_width
            result.probes += est.probes
            result.notes.append(
                f"H({name}) by stochastic Lanczos quadrature{f' because {why}' if why else ''}: "
                f"±{est.half_width:.2g} at 95% ({est.probes} probes; target ±{slq_tol:g}); "
                "H(K_Z) and the label entropies are exact"
            )
        elif option.route == "khatri-rao":
            joints[key] = _khatri_rao_entropy(stats.scatters[present], L, N)
        elif option.route == "dense":
            joints[key] = _dense_joint_entropy(blocks, G, N)
        else:  # class-blocks: the spectrum of K_Z∘K_Y1 is the union of the classes' spectra
            pieces = stats.scatters[present] if option.source == "scatters" else map(_smaller_side, blocks)
            joints[key] = sum(_entropy(torch.linalg.eigvalsh(S), N) for S in pieces)
    _fill_metrics(result, h_samples, h_labels, h_labels_onehot, joints)
    return result


def _fill_metrics(
    result: SampleLevelResult,
    h_samples: float,
    h_labels: float,
    h_labels_onehot: float,
    joints: dict[str, float | None],
) -> None:
    """MI, MIR, HDR from the entropies (information.ratio_metrics); SLQ half-widths carry over to MI/MIR."""
    h_joint, h_joint_onehot = joints["h_joint"], joints["h_joint_onehot"]
    ratios = ratio_metrics(h_samples, h_labels, h_joint or 0.0)  # mi, mir dropped below when h_joint is None
    result.metrics = {
        "h_samples": h_samples,
        "h_labels": h_labels,
        "mi_samples": ratios["mi"] if h_joint is not None else None,
        "mir_samples": ratios["mir"] if h_joint is not None else None,
        "hdr_samples": ratios["hdr"],
        "mi_samples_onehot": h_samples + h_labels_onehot - h_joint_onehot
        if h_joint_onehot is not None
        else None,
    }
    if ratios["hdr"] is None:
        result.notes.append("hdr_samples is undefined: H(K_Z) = H(K_Y) = 0")
    if h_joint is not None and ratios["mir"] is None:
        result.notes.append("mir_samples is undefined: min(H(K_Z), H(K_Y)) = 0")
    interval = result.interval
    if "h_joint" in interval:
        interval["mi_samples"] = interval["h_joint"]
        if ratios["mir"] is not None:
            interval["mir_samples"] = interval["h_joint"] / min(h_samples, h_labels)
    if "h_joint_onehot" in interval:
        interval["mi_samples_onehot"] = interval["h_joint_onehot"]
