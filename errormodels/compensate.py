"""Error-mean compensation: the expected accumulated error of each output channel, as a bias.

For a layer whose output channel ``c`` has integer weights ``w[c, j]`` (``j`` over the fan-in)
and whose input codes follow the pooled distribution ``pbar(x)`` (padding taps included), the
expected accumulated error under multiplier ``m`` is

    mu_c = sum_j sum_x pbar(x) e_m(x, w[c, j]) = sum_w h_c(w) Abar_m(w),

with ``e_m(x, w) = approx_m(x, w) - x * w``, ``Abar_m(w) = sum_x pbar(x) e_m(x, w)`` and ``h_c``
the channel's weight histogram. Subtracting ``round(mu_c)`` from the channel's int32 bias removes
it at zero run-time cost; the remaining error has mean ~0 and variance ``Var - Var_c(mu_c)``.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

import hwlib
from errormodels.catalog import ErrorCatalog, error_grid
from errormodels.errors import StatsError
from errormodels.predict import Method, Prediction, sampled_operands
from errormodels.sampled import sampled_moments
from errormodels.stats import ACT_DOMAIN, WEIGHT_DOMAIN, OperandStats, histogram
from hwlib.blocks import Block

__all__ = ["Compensation", "activation_pmf", "bias_corrections", "channel_error_means",
           "compensated", "shifted_corrections"]


def activation_pmf(stats: OperandStats) -> np.ndarray:
    """Pooled activation distribution ``pbar`` of a layer, float64 (256,) over ``ACT_DOMAIN``."""
    return stats.field_hists.sum(axis=0) / float(stats.field_hists.sum())


@lru_cache(maxsize=64)
def _grid(spec: str) -> np.ndarray:
    """float64 (256, 256) error table of ``spec`` on the statistics grid (read-only, cached)."""
    g = error_grid(hwlib.get(spec))[0].astype(np.float64)
    g.setflags(write=False)
    return g


def _check_pmf(pmf: np.ndarray, where: str) -> np.ndarray:
    p = np.asarray(pmf, np.float64)
    if p.shape != (ACT_DOMAIN.size,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
        raise StatsError(f"{where}: expected an activation distribution of shape "
                         f"({ACT_DOMAIN.size},) summing to 1, got shape {p.shape}")
    return p


def channel_error_means(weights: np.ndarray, act_pmf: np.ndarray,
                        multiplier: str | hwlib.Multiplier) -> np.ndarray:
    """Expected accumulated error ``mu_c`` of each output channel, float64 (C,).

    Args:
        weights: integer weights ``(C, ...)`` (int8 values), one row of fan-in values per channel.
        act_pmf: the pooled input-code distribution (256,), e.g. :func:`activation_pmf`.
        multiplier: a spec or hwlib multiplier (the first operand is the activation).
    """
    spec = multiplier if isinstance(multiplier, str) else multiplier.spec
    p = _check_pmf(act_pmf, f"channel_error_means({spec})")
    w = np.asarray(weights)
    if w.ndim < 1 or w.dtype.kind not in "iu":
        raise StatsError(f"channel_error_means: expected integer weights (C, ...), got "
                         f"{w.dtype} {w.shape}")
    abar = p @ _grid(spec)                                          # (256,) over weights
    hist = histogram(w.reshape(w.shape[0], -1), WEIGHT_DOMAIN, axis=-1)
    return hist @ abar


def bias_corrections(weights: np.ndarray, act_pmf: np.ndarray,
                     multiplier: str | hwlib.Multiplier) -> np.ndarray:
    """``round(mu_c)`` per channel, int64 (C,): the amount to subtract from the int32 bias."""
    return np.rint(channel_error_means(weights, act_pmf, multiplier)).astype(np.int64)


def shifted_corrections(weights: np.ndarray, act_pmf: np.ndarray,
                        multiplier: str | hwlib.Multiplier | tuple[Block, ...], offset: int = 0,
                        hi: int = 255) -> np.ndarray:
    """``round(mu_c)`` per channel, int64 (C,), when the circuit reads ``min(x + offset, hi)``
    for codes ``x ~ act_pmf`` (operand rounding) while the bias removes ``zp * sum(w)`` only: the
    expected error then includes the offset's own ``E[min(x + offset, hi) - x] * sum(w)``.

    ``multiplier`` may be a layer's blocks (:class:`hwlib.blocks.Block`): each block's weights
    under its own multiplier, the channel's means summed before rounding.
    """
    w = np.asarray(weights)
    p = _check_pmf(act_pmf, "shifted_corrections")
    if isinstance(multiplier, (str, hwlib.Multiplier)):
        mu = _shifted_means(w, p, multiplier, offset, hi)
    else:
        mu = np.zeros(len(w))
        for b in multiplier:
            (o0, o1), (i0, i1) = b.out, b.inp or (0, w.shape[1])
            mu[o0:o1] += _shifted_means(w[o0:o1, i0:i1], p, b.multiplier, offset, hi)
    return np.rint(mu).astype(np.int64)


def _shifted_means(w: np.ndarray, p: np.ndarray, multiplier: str | hwlib.Multiplier,
                   offset: int, hi: int) -> np.ndarray:
    """float64 (C,) expected accumulated error of :func:`shifted_corrections` (one multiplier)."""
    if not offset:
        return channel_error_means(w, p, multiplier)
    x = np.arange(p.size)
    moved = np.minimum(x + offset, max(hi, offset))
    shifted = np.bincount(moved, weights=p, minlength=p.size)[:p.size]
    return (channel_error_means(w, shifted, multiplier)
            + float(p @ (moved - x)) * w.reshape(len(w), -1).sum(1))


def compensated(prediction: Prediction, stats: list[OperandStats],
                catalog: ErrorCatalog) -> Prediction:
    """The prediction after each channel's mean error is folded into its bias.

    The mean becomes 0. With ``Method.CHANNEL`` (which counts the across-channel spread of the
    channel means) the variance loses ``Var_c(mu_c)``; with ``Method.SAMPLE`` the sampled
    operands' errors are recomputed less each channel's correction ``round(mu_c)``, so the
    mean is the residual the correction leaves and the std exact on the sample; the other
    formulas ignore channels, so their std is kept. Needs per-channel weight histograms for
    ``CHANNEL`` and the sampled operands for ``SAMPLE``.
    """
    if len(stats) != prediction.std.shape[0]:
        raise StatsError(f"compensated: {len(stats)} layers of statistics for a prediction of "
                         f"{prediction.std.shape[0]} layers")
    if prediction.method is Method.SAMPLE:
        out = [sampled_moments(sampled_operands(s), catalog.errors,
                               np.rint(_channel_means(s, catalog)).T) for s in stats]
        return Prediction(mean=np.where(prediction.feasible, np.stack([o[0] for o in out]),
                                        np.nan),
                          std=np.where(prediction.feasible, np.stack([o[1] for o in out]),
                                       np.inf),
                          feasible=prediction.feasible, method=prediction.method)
    std = prediction.std
    if prediction.method is Method.CHANNEL:
        var = np.stack([_channel_mean_var(s, catalog) for s in stats])
        std = np.where(prediction.feasible,
                       np.sqrt(np.maximum(std * std - var, 0.0)), np.inf)
    mean = np.where(prediction.feasible, 0.0, np.nan)
    return Prediction(mean=mean, std=std, feasible=prediction.feasible, method=prediction.method)


def _channel_means(stats: OperandStats, catalog: ErrorCatalog) -> np.ndarray:
    """``mu_c`` of one layer under every catalog multiplier, float64 (C, M)."""
    abar = np.einsum("x,mxw->mw", activation_pmf(stats), catalog.float_errors)
    return stats.channel_pmfs() * stats.fan_in @ abar.T


def _channel_mean_var(stats: OperandStats, catalog: ErrorCatalog) -> np.ndarray:
    """``Var_c(mu_c)`` of one layer under every catalog multiplier, float64 (M,)."""
    return _channel_means(stats, catalog).var(axis=0)


class Compensation:
    """Bias corrections of a network's layers under any multiplier, from their input-code
    distributions (cached per layer and spec).

    Args:
        act_pmfs: layer name -> pooled input-code distribution (256,).
    """

    def __init__(self, act_pmfs: Mapping[str, np.ndarray]) -> None:
        self.act_pmfs = {k: _check_pmf(v, f"Compensation[{k!r}]") for k, v in act_pmfs.items()}
        self._cache: dict[tuple[str, str | tuple[Block, ...], int], np.ndarray] = {}

    @classmethod
    def from_stats(cls, stats: list[OperandStats]) -> Compensation:
        """From the layers' operand statistics (their pooled field histograms)."""
        return cls({s.name: activation_pmf(s) for s in stats})

    def correction(self, layer: str, weights: np.ndarray, spec: str | tuple[Block, ...],
                   offset: int = 0, hi: int = 255) -> np.ndarray:
        """int64 (C,) to subtract from ``layer``'s bias when it runs ``spec`` (or blocks) with
        ``weights`` (zeros for an exact multiplier), its input codes offset by ``offset`` and
        clipped at ``hi`` (operand rounding, :func:`shifted_corrections`). Cached by (layer,
        spec, offset): the weights must not change."""
        if layer not in self.act_pmfs:
            raise StatsError(f"Compensation: no input distribution for layer {layer!r}; have "
                             f"{sorted(self.act_pmfs)}")
        key = (layer, spec, offset)
        if key not in self._cache:
            out = shifted_corrections(weights, self.act_pmfs[layer], spec, offset, hi)
            out.setflags(write=False)
            self._cache[key] = out
        return self._cache[key]
