"""Sigma -> multiplier matching: cheapest within tolerance, or nearest predicted error."""
from __future__ import annotations

import enum
from collections.abc import Sequence

import numpy as np

from errormodels.catalog import ErrorCatalog
from errormodels.compensate import compensated
from errormodels.errors import SigmasError, StatsError
from errormodels.predict import Method, Prediction, predict
from errormodels.sigmas import LayerSigma, pair_with_stats
from errormodels.stats import OperandStats
from hwlib.assignment import Assignment, LayerAssignment


class Rule(str, enum.Enum):
    """How a layer's multiplier is chosen from its predicted errors."""

    CHEAPEST = "cheapest"   # lowest power with predicted error <= tolerance (AGN-Approx)
    NEAREST = "nearest"     # predicted error nearest to the tolerance (either side)


class Metric(str, enum.Enum):
    """Which predicted error is compared with the tolerance."""

    STD = "std"
    RMS = "rms"   # sqrt(std^2 + mean^2): counts the bias of a biased multiplier


def tolerances(sigmas: np.ndarray, out_std: np.ndarray) -> np.ndarray:
    """Tolerance ``|sigma_l| * std(y_l)`` per layer, float64 (L,)."""
    s, y = np.asarray(sigmas, np.float64), np.asarray(out_std, np.float64)
    if s.shape != y.shape:
        raise SigmasError(f"tolerances: {s.shape[0] if s.ndim else s} sigmas for "
                          f"{y.shape[0] if y.ndim else y} output stds")
    if not np.all(np.isfinite(s)):
        bad = int(np.flatnonzero(~np.isfinite(s))[0])
        raise SigmasError(f"tolerances: sigma at layer {bad} is {s[bad]}; expected finite sigmas")
    return np.abs(s) * y


def select(error: np.ndarray, tolerance: np.ndarray, relative_power: np.ndarray,
           feasible: np.ndarray, rule: Rule | str) -> np.ndarray:
    """Index of the chosen multiplier per layer.

    Args:
        error: float64 (L, M), the predicted error metric.
        tolerance: float64 (L,).
        relative_power: float64 (M,).
        feasible: bool (L, M); infeasible pairs are never chosen.
        rule: ``cheapest`` (lowest power with error <= tolerance; ties -> smaller error) or
            ``nearest`` (smallest |error - tolerance|; ties -> lower power).

    Returns:
        int64 (L,) column indices.

    Raises:
        ValueError: a layer has no admissible multiplier (only possible when the catalog's exact
            multiplier cannot take the layer's operands).
    """
    rule = Rule(rule)
    power = np.broadcast_to(relative_power, error.shape)
    if rule is Rule.CHEAPEST:
        ok = feasible & (error <= tolerance[:, None])
        primary, secondary = np.where(ok, power, np.inf), error
    else:
        ok = feasible.copy()
        primary, secondary = np.where(ok, np.abs(error - tolerance[:, None]), np.inf), power
    empty = ~ok.any(axis=1)
    if empty.any():
        raise ValueError(f"match: layer index {int(np.flatnonzero(empty)[0])} has no multiplier "
                         f"whose domains hold its operands; quantize its activations to the "
                         f"catalog's activation domain")
    tie = ok & (primary == primary.min(axis=1, keepdims=True))
    return np.argmin(np.where(tie, secondary, np.inf), axis=1)


def match(sigmas: Sequence[LayerSigma], stats: Sequence[OperandStats], catalog: ErrorCatalog,
          rule: Rule | str = Rule.CHEAPEST, metric: Metric | str = Metric.STD,
          method: Method | str = Method.CHANNEL,
          prediction: Prediction | None = None, compensate: bool = False) -> Assignment:
    """Choose one multiplier per layer (in the order of ``sigmas``).

    Args:
        sigmas: learned sigma per layer.
        stats: operand statistics of the same layers (any order).
        catalog: candidate multipliers (always holding an exact one).
        rule: the matching rule.
        metric: ``std`` or ``rms``.
        method: the error-model formula.
        prediction: a precomputed prediction for ``stats`` in ``sigmas`` order (skips predict).
        compensate: score every multiplier as if each channel's mean error were folded into its
            bias (:func:`errormodels.compensated`; a given ``prediction`` is compensated here).

    Returns:
        The assignment, with its relative energy.
    """
    rule, metric = Rule(rule), Metric(metric)
    pairs = pair_with_stats(sigmas, stats)
    ordered = [st for _, st in pairs]
    pred = predict(ordered, catalog, method) if prediction is None else prediction
    if compensate:
        pred = compensated(pred, ordered, catalog)
    if pred.std.shape != (len(ordered), len(catalog)):
        raise ValueError(f"match: prediction has shape {pred.std.shape}, expected "
                         f"({len(ordered)} layers, {len(catalog)} multipliers) in sigmas order")
    tol = tolerances(np.array([sg.sigma for sg, _ in pairs]),
                     np.array([st.out_std for st in ordered]))
    _check_exact_feasible(ordered, catalog, pred.feasible)
    err = pred.std if metric is Metric.STD else pred.rms
    choice = select(err, tol, catalog.relative_power, pred.feasible, rule)
    layers = tuple(LayerAssignment(
        name=sg.name, multiplier=catalog.specs[j], sigma=float(sg.sigma), tolerance=float(tol[i]),
        predicted_std=float(pred.std[i, j]), predicted_mean=float(pred.mean[i, j]),
        relative_power=float(catalog.relative_power[j]), multiplications=st.multiplications)
        for i, ((sg, st), j) in enumerate(zip(pairs, choice)))
    specs = [catalog.specs[j] for j in choice]
    return Assignment(catalog=catalog.family, rule=rule.value, metric=metric.value,
                      energy=catalog.catalog.energy(specs, [st.multiplications for st in ordered]),
                      power_source=catalog.catalog.power_source_of(specs), layers=layers)


def _check_exact_feasible(stats: Sequence[OperandStats], catalog: ErrorCatalog,
                          feasible: np.ndarray) -> None:
    """Raise, naming the layer and ranges, when the catalog's exact multiplier cannot serve it."""
    bad = np.flatnonzero(~feasible[:, catalog.exact_index])
    if bad.size == 0:
        return
    st = stats[int(bad[0])]
    xs = np.flatnonzero(catalog.x_support[catalog.exact_index])
    ws = np.flatnonzero(catalog.w_support[catalog.exact_index]) - 128
    used_x = np.flatnonzero(st.field_hists.sum(axis=0))
    used_w = np.flatnonzero(st.weight_hist) - 128
    raise StatsError(
        f"match: layer {st.name!r} uses activations {used_x.min()}..{used_x.max()} and weights "
        f"{used_w.min()}..{used_w.max()}, but the exact multiplier of catalog {catalog.family!r} "
        f"({catalog.specs[catalog.exact_index]}) takes activations {xs.min()}..{xs.max()} and "
        f"weights {ws.min()}..{ws.max()}; collect the operand statistics with the activations "
        f"quantized to that range (agn.layers.approximate_ narrows the quantizers)")
