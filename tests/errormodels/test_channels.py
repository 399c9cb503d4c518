"""Per-output-channel error prediction and filter-granularity matching."""
from __future__ import annotations

import numpy as np
import pytest

from errormodels import ErrorCatalog, LayerSigma, OperandStats, StatsError, match, predict
from errormodels.channels import match_filters, predict_channels

CAT = ["exact", "marlin:0", "marlin:40", "marlin:120", "marlin:255"]


def _stats(weights: np.ndarray, fields: np.ndarray, name: str = "conv") -> OperandStats:
    return OperandStats.from_operands(name, weights, fields, multiplications=fields.shape[1] * 50,
                                      out_std=2000.0, out_mean=0.0, seed=0)


def _operands(seed: int, channels: int = 6, fan_in: int = 18):
    rng = np.random.default_rng(seed)
    fields = rng.integers(0, 256, (24, fan_in)) * (rng.random((24, fan_in)) > 0.3)
    scale = np.linspace(2, 120, channels).astype(int)[:, None]  # channel 0 tiny, last large
    weights = np.clip(rng.normal(0, 1, (channels, fan_in)) * scale, -127, 127).astype(np.int64)
    return weights, fields


def test_a_channel_predicts_what_the_layer_of_that_channel_alone_predicts():
    weights, fields = _operands(0)
    cat = ErrorCatalog.build(CAT)
    per = predict_channels(_stats(weights, fields), cat)
    assert per.std.shape == (6, len(CAT)) and per.feasible.all()
    for c in range(6):
        alone = predict([_stats(weights[c:c + 1], fields)], cat, "fixed_field")
        np.testing.assert_allclose(per.std[c], alone.std[0], rtol=1e-9)
        np.testing.assert_allclose(per.mean[c], alone.mean[0], rtol=1e-9, atol=1e-9)
    layer = predict([_stats(weights, fields)], cat, "channel")
    np.testing.assert_allclose(per.mean.mean(axis=0), layer.mean[0], rtol=1e-9, atol=1e-9)
    assert per.std[:, 0].max() == 0 and per.std[:, 2:].std(axis=0).min() > 0  # channels differ


def test_filter_matching_picks_per_group_the_cheapest_multiplier_its_worst_channel_tolerates():
    weights, fields = _operands(1, channels=8)
    st = _stats(weights, fields)
    cat = ErrorCatalog.build(CAT)
    per = predict_channels(st, cat)
    tol = float(np.median(per.std[:, CAT.index("marlin:40")]))  # some groups take it, not all
    sig = [LayerSigma(name="conv", sigma=tol / st.out_std)]
    asg = match_filters(sig, [st], cat, group=2)
    (layer,) = asg.layers
    assert layer.multiplier is None and [b.out for b in layer.groups] == \
        [(0, 2), (2, 4), (4, 6), (6, 8)]
    for b in layer.groups:
        worst = per.std[b.out[0]:b.out[1]].max(axis=0)
        ok = [j for j in range(len(CAT)) if worst[j] <= layer.tolerance]
        assert b.multiplier == cat.specs[min(ok, key=lambda j: cat.relative_power[j])]
    power = [cat.relative_power[cat.specs.index(b.multiplier)] for b in layer.groups]
    assert len(set(power)) > 1  # the groups differ
    assert asg.details == {"granularity": "filter", "group": 2}
    assert asg.energy == pytest.approx(np.mean(power))
    flat = match(sig, [st], cat)
    assert flat.layers[0].tolerance == layer.tolerance
    with pytest.raises(StatsError, match="group size 3 does not divide the 8 output channels"):
        match_filters(sig, [st], cat, group=3)


def test_sensitivity_order_puts_filters_of_zero_weights_first():
    from errormodels.channels import sensitivity_order

    weights, fields = _operands(2, channels=8)
    weights[[5, 6]] = 0  # these two groups' products are exact whatever the multiplier
    st = _stats(weights, fields)
    order = sensitivity_order(st, ErrorCatalog.build(CAT), group=1)
    assert sorted(order) == list(range(8)) and set(order[:2]) == {5, 6}
    assert len(sensitivity_order(st, ErrorCatalog.build(CAT), group=4)) == 2
