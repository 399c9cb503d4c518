"""Filter granularity: predicted error per output channel and one multiplier per channel group.

A channel's output error has the fixed-field formula with the channel's own weight distribution
``q_c`` (``A_c(x) = sum_w q_c(w) e(x, w)``, likewise ``E2_c``): the layer's fields, its fan-in,
and a mean and std per (channel, multiplier). The noise stage adds noise of std
``|sigma| * std(y)`` to every output of a layer, whatever its channel, so a channel tolerates the
layer's tolerance; with one sigma learned per output channel, channel ``c`` tolerates
``|sigma_c| * std(y)``. Filter matching picks per group of ``group`` consecutive output channels
the multiplier the rule picks for the group's worst channel against its least tolerant channel.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from errormodels.catalog import ErrorCatalog
from errormodels.errors import StatsError
from errormodels.match import Metric, Rule, select, tolerances
from errormodels.predict import Method, error_moments, feasibility, moments_to_prediction
from errormodels.sigmas import LayerSigma, channel_tolerances, pair_with_stats
from errormodels.stats import OperandStats
from hwlib.assignment import Assignment, LayerAssignment
from hwlib.blocks import from_channel_specs


@dataclass(frozen=True, eq=False)  # holds arrays
class ChannelPrediction:
    """Predicted output error of one layer's C channels under M multipliers.

    Attributes:
        mean: float64 (C, M) (NaN where infeasible).
        std: float64 (C, M) (inf where infeasible).
        feasible: bool (M,), the layer's operands inside each multiplier's domains.
    """

    mean: np.ndarray
    std: np.ndarray
    feasible: np.ndarray

    @property
    def rms(self) -> np.ndarray:
        """``sqrt(std^2 + mean^2)``, (C, M)."""
        return np.where(self.feasible, np.hypot(self.std, np.nan_to_num(self.mean)), np.inf)


def predict_channels(stats: OperandStats, catalog: ErrorCatalog) -> ChannelPrediction:
    """Per-output-channel predicted error mean and std of one layer under every multiplier.

    Raises:
        StatsError: the statistics hold no per-channel weight histograms.
    """
    a, e2 = error_moments(catalog.float_errors, stats.channel_pmfs(), catalog.squared_errors)
    p = stats.field_pmfs()
    out = [moments_to_prediction(a[c], e2[c], p, stats.fan_in, Method.FIXED_FIELD)
           for c in range(a.shape[0])]
    feasible = feasibility([stats], catalog)[0]
    mean = np.where(feasible, np.stack([o[0] for o in out]), np.nan)
    std = np.where(feasible, np.stack([o[1] for o in out]), np.inf)
    return ChannelPrediction(mean=mean, std=std, feasible=feasible)


def match_filters(sigmas: Sequence[LayerSigma], stats: Sequence[OperandStats],
                  catalog: ErrorCatalog, rule: Rule | str = Rule.CHEAPEST,
                  metric: Metric | str = Metric.STD, group: int = 1) -> Assignment:
    """One multiplier per group of ``group`` output channels of every layer (``sigmas`` order).

    A group's error is its worst channel's, its tolerance its least tolerant channel's (the
    layer's tolerance, or per channel from ``channel_sigmas``); the layer entry records the
    layer's tolerance, the pooled predicted std ``sqrt(mean_c std_c^2)`` and mean of its
    channels under their multipliers and the multiplication-weighted relative power.

    Raises:
        StatsError: ``group`` does not divide a layer's channels, or no per-channel histograms.
    """
    rule, metric = Rule(rule), Metric(metric)
    pairs = pair_with_stats(sigmas, stats)
    tol = tolerances(np.array([sg.sigma for sg, _ in pairs]),
                     np.array([st.out_std for _, st in pairs]))
    layers = []
    for (sg, st), t in zip(pairs, tol):
        pred = predict_channels(st, catalog)
        channels = pred.std.shape[0]
        if group < 1 or channels % group:
            raise StatsError(f"match_filters: group size {group} does not divide the "
                             f"{channels} output channels of layer {st.name!r}")
        err = pred.std if metric is Metric.STD else pred.rms
        worst = err.reshape(channels // group, group, -1).max(axis=1)
        tol_c = channel_tolerances(sg, t, st.out_std, channels)
        choice = select(worst, tol_c.reshape(-1, group).min(axis=1), catalog.relative_power,
                        np.broadcast_to(pred.feasible, worst.shape), rule)
        per_channel = np.repeat(choice, group)
        rows = np.arange(channels)
        power = np.asarray(catalog.relative_power)[per_channel]
        layers.append(LayerAssignment(
            name=sg.name, groups=from_channel_specs([catalog.specs[j] for j in choice], group),
            sigma=float(sg.sigma), tolerance=float(t),
            predicted_std=float(np.sqrt(np.mean(pred.std[rows, per_channel] ** 2))),
            predicted_mean=float(np.mean(pred.mean[rows, per_channel])),
            relative_power=float(power.mean()), multiplications=st.multiplications))
    specs = [x.spec for x in layers]
    return Assignment(catalog=catalog.family, rule=rule.value, metric=metric.value,
                      energy=catalog.catalog.energy(specs, [st.multiplications for _, st in pairs]),
                      power_source=catalog.catalog.power_source_of(specs), layers=tuple(layers),
                      details={"granularity": "filter", "group": group})


def sensitivity_order(stats: OperandStats, catalog: ErrorCatalog,
                      group: int = 1) -> tuple[int, ...]:
    """The layer's output-channel groups, least sensitive first: by the mean over the catalog's
    feasible approximate multipliers of each group's worst predicted error std relative to the
    layer's mean (ties by group index)."""
    pred = predict_channels(stats, catalog)
    channels = pred.std.shape[0]
    if group < 1 or channels % group:
        raise StatsError(f"sensitivity_order: group size {group} does not divide the "
                         f"{channels} output channels of layer {stats.name!r}")
    worst = pred.std.reshape(channels // group, group, -1).max(axis=1)
    scale = worst.mean(axis=0)
    cols = pred.feasible & np.isfinite(scale) & (scale > 0)
    score = (worst[:, cols] / scale[cols]).mean(axis=1) if cols.any() else np.zeros(len(worst))
    return tuple(int(i) for i in np.lexsort((np.arange(len(score)), score)))
