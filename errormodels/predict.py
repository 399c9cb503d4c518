"""Predicted mean and std of a layer's output error under each multiplier of a catalog.

Notation (docs/multipliers.md): ``e(x, w)`` the error table, ``q`` the layer's weight distribution,
``p_k`` the activation distribution of sampled receptive field ``k``, ``n`` the fan-in, and
``A(x) = sum_w q(w) e(x, w)``, ``E2(x) = sum_w q(w) e(x, w)^2``. Every formula gives the mean
``n * mean_k mu_k`` with ``mu_k = sum_x p_k(x) A(x)``; they differ in the std:

- ``IID``: operand pairs i.i.d. from the pooled activations: ``sqrt(n * Var_e)``.
- ``POPULATION``: law of total variance over the fields, drawing x from ``p_k`` and w from ``q``:
  ``sqrt(n * mean_k v_k + n^2 * Var_k mu_k)`` with ``v_k = sum_x p_k(x) E2(x) - mu_k^2``.
- ``FIXED_FIELD``: the field's activations held fixed, only the weights drawn:
  the same combination with ``v_k = sum_x p_k(x) (E2(x) - A(x)^2)``.
- ``CHANNEL``: fixed fields and, per output channel c, weights drawn from that channel's own
  distribution ``q_c``: the law of total variance over (field, channel). With
  ``A_c(x) = sum_w q_c(w) e(x, w)`` and ``Cov_c(q_c) ~= sum_j b_j b_j^T`` (the leading
  ``CHANNEL_RANK`` components), ``B_j(x) = sum_w b_j(w) e(x, w)`` gives
  ``Var = n * sum_x pbar(x) (E2 - A^2 - sum_j B_j^2) + n^2 * (Var_k mu_k + mean_k sum_j
  (sum_x p_k(x) B_j(x))^2)``: a channel whose weights shift its mean error shifts it on all n
  taps at once, which the per-tap formulas miss (signed BAM/truncation circuits).
- ``SAMPLE``: no distribution at all: the accumulated error of every sampled field with every
  output channel's own weights, position by position (:mod:`errormodels.sampled`); exact on the
  sample, so only its size limits it, at N * C * n look-ups per multiplier (needs the operands
  that ``agn.stats`` records).
"""
from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from errormodels.catalog import ErrorCatalog
from errormodels.errors import StatsError
from errormodels.sampled import SampledOperands, sampled_moments
from errormodels.stats import OperandStats


class Method(str, enum.Enum):
    """Which error-model formula to use."""

    IID = "iid"
    POPULATION = "population"
    FIXED_FIELD = "fixed_field"
    CHANNEL = "channel"
    SAMPLE = "sample"


CHANNEL_RANK = 8
"""Leading components of the across-channel weight covariance kept by ``Method.CHANNEL``."""


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Prediction:
    """Predicted output error of L layers under M multipliers.

    Attributes:
        mean: float64 (L, M), predicted mean of the output error (NaN where infeasible).
        std: float64 (L, M), predicted std of the output error (inf where infeasible).
        feasible: bool (L, M), False where the layer's operands fall outside a multiplier's
            declared domains (e.g. activations above 127 for a signed EvoApprox circuit).
        method: the formula used.
    """

    mean: np.ndarray
    std: np.ndarray
    feasible: np.ndarray
    method: Method

    @property
    def rms(self) -> np.ndarray:
        """Root mean square output error ``sqrt(std^2 + mean^2)``, (L, M)."""
        return np.where(self.feasible, np.hypot(self.std, np.nan_to_num(self.mean)), np.inf)


def error_moments(errors: np.ndarray, weight_pmfs: np.ndarray,
                  squared: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``A`` and ``E2`` of every multiplier for every weight distribution.

    Args:
        errors: (M, X, W) error tables (any real dtype).
        weight_pmfs: (L, W) weight distributions (rows sum to 1).
        squared: ``errors ** 2`` as float64 when already at hand (e.g. a catalog's cache).

    Returns:
        ``(A, E2)``, each float64 (L, M, X).
    """
    m, x, w = errors.shape
    q = np.asarray(weight_pmfs, np.float64)
    if q.ndim != 2 or q.shape[1] != w:
        raise ValueError(f"error_moments: weight_pmfs must be (L, {w}), got {q.shape}")
    e = np.asarray(errors, np.float64).reshape(m * x, w)
    e2 = (e * e if squared is None else np.asarray(squared, np.float64).reshape(m * x, w))
    a, s = q @ e.T, q @ e2.T                                    # (L, M * X), contiguous
    return a.reshape(-1, m, x), s.reshape(-1, m, x)


def channel_components(channel_pmfs: np.ndarray, rank: int = CHANNEL_RANK) -> np.ndarray:
    """Leading components ``b_j`` of the covariance of the channels' weight distributions.

    Args:
        channel_pmfs: (C, W), one weight distribution per output channel.
        rank: components kept (fewer when the covariance has lower rank).

    Returns:
        float64 (W, r) with ``sum_j b_j b_j^T`` the best rank-r approximation of ``Cov_c(q_c)``.
    """
    qc = np.asarray(channel_pmfs, np.float64)
    d = (qc - qc.mean(axis=0)) / np.sqrt(qc.shape[0])       # Cov_c(q_c) = d^T d
    _, s, vt = np.linalg.svd(d, full_matrices=False)        # singular values descending
    keep = s[:rank] > (s[0] if s.size else 0.0) * 1e-6
    return (vt[:rank][keep] * s[:rank][keep, None]).T


def moments_to_prediction(a: np.ndarray, e2: np.ndarray, field_pmfs: np.ndarray, fan_in: int,
                          method: Method, b: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of one layer's output error from its moments.

    Args:
        a: (M, X), ``A(x)`` per multiplier.
        e2: (M, X), ``E2(x)`` per multiplier.
        field_pmfs: (N, X), the sampled fields' activation distributions.
        fan_in: n, products summed per output element.
        method: the formula.
        b: (M, X, r), ``B_j(x)`` per multiplier (``Method.CHANNEL`` only).

    Returns:
        ``(mean, std)``, each float64 (M,).
    """
    p = np.asarray(field_pmfs, np.float64)
    n = float(fan_in)
    method = Method(method)
    mu = p @ a.T                                               # (N, M)
    mean = n * mu.mean(axis=0)
    if method is Method.IID:
        pbar = p.mean(axis=0)
        return mean, np.sqrt(n * np.maximum(e2 @ pbar - (a @ pbar) ** 2, 0.0))
    between = mu.var(axis=0)
    if method is Method.POPULATION:
        within = p @ e2.T - mu * mu
    elif method is Method.FIXED_FIELD:
        within = p @ (e2 - a * a).T
    else:
        if b is None:
            raise ValueError("moments_to_prediction: Method.CHANNEL needs the B_j(x) moments b")
        within = p @ (e2 - a * a - (b * b).sum(axis=-1)).T
        m, x, r = b.shape
        pb = (p @ b.transpose(1, 0, 2).reshape(x, m * r)).reshape(p.shape[0], m, r)
        between = between + (pb * pb).sum(axis=-1).mean(axis=0)
    return mean, np.sqrt(n * np.maximum(within, 0.0).mean(axis=0) + n * n * between)


def feasibility(stats: Sequence[OperandStats], catalog: ErrorCatalog) -> np.ndarray:
    """bool (L, M): every activation and weight value a layer uses is in a multiplier's domains."""
    used_x = np.stack([s.field_hists.sum(axis=0) > 0 for s in stats])      # (L, X)
    used_w = np.stack([s.weight_hist > 0 for s in stats])                  # (L, W)
    bad_x = used_x.astype(np.int64) @ (~catalog.x_support).T.astype(np.int64)
    bad_w = used_w.astype(np.int64) @ (~catalog.w_support).T.astype(np.int64)
    return (bad_x == 0) & (bad_w == 0)


def predict(stats: Sequence[OperandStats], catalog: ErrorCatalog,
            method: Method | str = Method.CHANNEL, *,
            channels_per_field: int | None = None) -> Prediction:
    """Predicted output error mean and std of every layer under every catalog multiplier.

    Args:
        stats: L layers' operand statistics.
        catalog: M multipliers.
        method: ``"channel"`` (default; needs per-channel weight histograms, which
            ``agn.stats`` records), ``"sample"`` (exact on the sampled operands, slower; needs
            the operands ``agn.stats`` records), ``"fixed_field"``, ``"population"`` or
            ``"iid"``.
        channels_per_field: ``Method.SAMPLE`` only: None pairs every field with every channel
            of its group; ``p`` with ``p`` of them, cycling (cost / ``C / p``; see
            :func:`errormodels.sampled.sampled_moments`).

    Returns:
        A :class:`Prediction` with (L, M) arrays.
    """
    stats = list(stats)
    if not stats:
        raise StatsError("predict: expected operand statistics for at least one layer, got none")
    try:
        method = Method(method)
    except ValueError:
        raise ValueError(f"predict: method {method!r} unknown; expected one of "
                         f"{[m.value for m in Method]}") from None
    if method is Method.SAMPLE:
        out = [sampled_moments(sampled_operands(s), catalog.errors,
                               channels_per_field=channels_per_field) for s in stats]
        return _prediction(out, stats, catalog, method)
    a, e2 = error_moments(catalog.float_errors, np.stack([s.weight_pmf() for s in stats]),
                          catalog.squared_errors)
    bs: list[np.ndarray | None] = [None] * len(stats)
    if method is Method.CHANNEL:
        comps = [channel_components(s.channel_pmfs()) for s in stats]
        m, x, w = catalog.errors.shape
        allb = catalog.float_errors.reshape(m * x, w) @ np.concatenate(comps, axis=1)
        cuts = np.cumsum([0] + [c.shape[1] for c in comps])
        bs = [allb[:, lo:hi].reshape(m, x, hi - lo) for lo, hi in zip(cuts[:-1], cuts[1:])]
    out = [moments_to_prediction(a[i], e2[i], s.field_pmfs(), s.fan_in, method, bs[i])
           for i, s in enumerate(stats)]
    return _prediction(out, stats, catalog, method)


def sampled_operands(stats: OperandStats) -> SampledOperands:
    """The layer's sampled operands (what ``Method.SAMPLE`` needs).

    Raises:
        StatsError: the statistics hold histograms only.
    """
    if stats.operands is None:
        raise StatsError(f"method 'sample' needs the sampled operands of layer "
                         f"{stats.name!r}; collect the statistics again with agn.stats (older "
                         f"files hold histograms only) or choose another method")
    return stats.operands


def _prediction(out: list[tuple[np.ndarray, np.ndarray]], stats: list[OperandStats],
                catalog: ErrorCatalog, method: Method) -> Prediction:
    """The (L, M) prediction of per-layer ``(mean, std)`` pairs, infeasible pairs masked."""
    feasible = feasibility(stats, catalog)
    mean = np.where(feasible, np.stack([o[0] for o in out]), np.nan)
    std = np.where(feasible, np.stack([o[1] for o in out]), np.inf)
    return Prediction(mean=mean, std=std, feasible=feasible, method=method)
