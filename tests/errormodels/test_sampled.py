"""Method.SAMPLE: the exact accumulated error of the sampled operands, against enumeration."""
import numpy as np
import pytest

import hwlib
from errormodels import (
    ErrorCatalog,
    Method,
    OperandStats,
    StatsError,
    activation_pmf,
    bias_corrections,
    compensated,
    load_stats,
    predict,
    save_stats,
)
from errormodels.sampled import SampledOperands, sampled_moments

SPECS = ["marlin:0", "marlin:15", "marlin:255", "evo:mul8s_1L2N"]


def _stats(fields, weights, **kw):
    return OperandStats.from_operands("layer", weights, fields, multiplications=100,
                                      out_std=1.0, out_mean=0.0, seed=0, **kw)


def _enumerated(spec, fields, weights, field_groups=None, groups=1):
    """Mean and std of sum_i e(x[k, i], w[c, i]) over every (field, channel of its group)."""
    m = hwlib.get(spec)
    per = len(weights) // groups
    fg = np.zeros(len(fields), int) if field_groups is None else field_groups
    errs = [sum(int(m(int(x), int(w))) - int(x) * int(w) for x, w in zip(fields[k], weights[c]))
            for k in range(len(fields)) for c in range(len(weights)) if c // per == fg[k]]
    return np.mean(errs), np.std(errs)


def test_sample_method_equals_enumeration_of_every_field_and_channel():
    rng = np.random.default_rng(0)
    fields = rng.integers(0, 128, size=(5, 6))
    weights = rng.integers(-100, 101, size=(3, 6))
    pred = predict([_stats(fields, weights)], ErrorCatalog.build(SPECS), Method.SAMPLE)
    for j, spec in enumerate(SPECS):
        mean, std = _enumerated(spec, fields, weights)
        assert pred.mean[0, j] == pytest.approx(mean, rel=1e-12, abs=1e-12)
        assert pred.std[0, j] == pytest.approx(std, rel=1e-12, abs=1e-12)
    assert pred.std[0, 0] == 0 and pred.std[0, 2] > 0


def test_grouped_fields_meet_only_their_groups_channels():
    rng = np.random.default_rng(1)
    fields = rng.integers(0, 128, size=(7, 4))
    weights = rng.integers(-100, 101, size=(4, 4))
    groups = np.array([0, 1, 1, 0, 1, 0, 0])
    st = _stats(fields, weights, groups=2, field_groups=groups)
    pred = predict([st], ErrorCatalog.build(SPECS), "sample")
    for j, spec in enumerate(SPECS):
        mean, std = _enumerated(spec, fields, weights, groups, 2)
        assert pred.mean[0, j] == pytest.approx(mean, rel=1e-12, abs=1e-12)
        assert pred.std[0, j] == pytest.approx(std, rel=1e-12, abs=1e-12)


def test_chunking_does_not_change_the_moments(monkeypatch):
    import errormodels.sampled as sampled
    rng = np.random.default_rng(2)
    ops = SampledOperands(rng.integers(0, 256, size=(40, 30)), rng.integers(-128, 128, (6, 30)))
    errors = ErrorCatalog.build(SPECS[:3]).errors
    whole = sampled_moments(ops, errors)
    monkeypatch.setattr(sampled, "_CHUNK", 7)
    parts = sampled_moments(ops, errors)
    np.testing.assert_allclose(parts, whole, rtol=1e-12)


def test_position_dependent_weights_defeat_histograms_not_the_sample():
    """A classifier-like layer: each weight meets its own input position's activations (large
    weights where activations are small). The histogram formulas pair them at random."""
    rng = np.random.default_rng(3)
    n = 64
    scale = np.where(np.arange(n) < n // 2, 120, 4)                  # busy and quiet inputs
    fields = rng.integers(0, scale + 1, size=(100, n))
    weights = np.where(np.arange(n) < n // 2, rng.integers(-3, 4, (4, n)),
                       rng.integers(-120, 121, (4, n)))
    st = _stats(fields, weights)
    cat = ErrorCatalog.build(["evo:mul8s_1L2N"])
    mean, std = _enumerated("evo:mul8s_1L2N", fields, weights)
    sample = predict([st], cat, "sample")
    channel = predict([st], cat, "channel")
    assert sample.std[0, 0] == pytest.approx(std, rel=1e-12)
    assert sample.mean[0, 0] == pytest.approx(mean, rel=1e-12, abs=1e-9)
    assert abs(channel.std[0, 0] / std - 1) > 0.2


def test_operands_are_saved_and_loaded(tmp_path):
    rng = np.random.default_rng(4)
    st = _stats(rng.integers(0, 256, size=(5, 6)), rng.integers(-128, 128, (4, 6)), groups=2,
                field_groups=np.array([0, 1, 1, 0, 1]))
    plain = OperandStats("plain", st.weight_hist, st.field_hists, fan_in=6, multiplications=6,
                         out_std=1.0, out_mean=0.0, seed=0)
    (back, back_plain) = load_stats(save_stats(tmp_path / "s.npz", [st, plain]))
    np.testing.assert_array_equal(back.operands.fields, st.operands.fields)
    np.testing.assert_array_equal(back.operands.weights, st.operands.weights)
    np.testing.assert_array_equal(back.operands.field_groups, [0, 1, 1, 0, 1])
    assert back.operands.groups == 2 and back_plain.operands is None
    cat = ErrorCatalog.build(SPECS)
    np.testing.assert_array_equal(predict([back], cat, "sample").std,
                                  predict([st], cat, "sample").std)
    with pytest.raises(StatsError, match="needs the sampled operands of layer 'plain'"):
        predict([back_plain], cat, "sample")


def test_inconsistent_operands_are_refused():
    rng = np.random.default_rng(5)
    st = _stats(rng.integers(0, 256, size=(5, 6)), rng.integers(-128, 128, (4, 6)))
    other = SampledOperands(st.operands.fields[::-1] // 2, st.operands.weights)
    with pytest.raises(StatsError, match="not the fields field_hists counts"):
        OperandStats("x", st.weight_hist, st.field_hists, fan_in=6, multiplications=6,
                     out_std=1.0, out_mean=0.0, seed=0, channel_hists=st.channel_hists,
                     operands=other)
    with pytest.raises(StatsError, match="groups=4 must be >= 1 and divide the 6"):
        SampledOperands(np.zeros((2, 3), int), np.zeros((6, 3), int), groups=4)
    with pytest.raises(StatsError, match="field_groups must be"):
        SampledOperands(np.zeros((2, 3), int), np.zeros((6, 3), int), groups=2,
                        field_groups=[0, 2])


def test_compensated_sample_prediction_is_the_residual_of_the_rounded_corrections():
    rng = np.random.default_rng(6)
    fields = rng.integers(0, 128, size=(6, 5))
    weights = rng.integers(-100, 101, size=(3, 5))
    st = _stats(fields, weights)
    cat = ErrorCatalog.build(SPECS)
    comp = compensated(predict([st], cat, "sample"), [st], cat)
    pbar = activation_pmf(st)
    for j, spec in enumerate(SPECS):
        corr = bias_corrections(weights, pbar, spec)
        m = hwlib.get(spec)
        errs = [sum(int(m(int(x), int(w))) - int(x) * int(w) for x, w in zip(f, weights[c]))
                - corr[c] for f in fields for c in range(3)]
        assert comp.mean[0, j] == pytest.approx(np.mean(errs), rel=1e-12, abs=1e-12)
        assert comp.std[0, j] == pytest.approx(np.std(errs), rel=1e-12, abs=1e-12)


def test_channels_per_field_cycles_through_each_groups_channels():
    rng = np.random.default_rng(7)
    fields = rng.integers(0, 128, size=(9, 5))
    weights = rng.integers(-100, 101, size=(6, 5))
    groups = np.array([0, 1, 1, 0, 1, 0, 0, 1, 0])
    st = _stats(fields, weights, groups=2, field_groups=groups)
    cat = ErrorCatalog.build(SPECS)
    for p in (1, 2):
        pred = predict([st], cat, "sample", channels_per_field=p)
        for j, spec in enumerate(SPECS):
            m = hwlib.get(spec)
            errs = []
            for g in (0, 1):
                for k, f in enumerate(fields[groups == g]):
                    for i in range(p):
                        c = 3 * g + (k * p + i) % 3
                        errs.append(sum(int(m(int(x), int(w))) - int(x) * int(w)
                                        for x, w in zip(f, weights[c])))
            assert pred.mean[0, j] == pytest.approx(np.mean(errs), rel=1e-12, abs=1e-12)
            assert pred.std[0, j] == pytest.approx(np.std(errs), rel=1e-12, abs=1e-12)
    np.testing.assert_array_equal(predict([st], cat, "sample", channels_per_field=3).std,
                                  predict([st], cat, "sample").std)
    with pytest.raises(StatsError, match="channels_per_field must be >= 1"):
        predict([st], cat, "sample", channels_per_field=0)
