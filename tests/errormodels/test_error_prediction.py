"""Predicted layer output error against Monte Carlo simulations of the dot-product error."""
import numpy as np
import pytest

import hwlib
from errormodels import ErrorCatalog, Method, OperandStats, error_moments, predict
from hwlib import INT8, UINT7, TableMultiplier
from hwlib.power import EXACT_POWER

TRIALS = 40_000


def scaled_fields(rng: np.random.Generator, n_fields: int, fan_in: int,
                  lo: int = 0, hi: int = 255) -> np.ndarray:
    """Receptive fields (N, n) whose activation scale differs per field (as across neurons)."""
    scales = rng.integers(max(lo, 8), hi + 1, size=n_fields)
    x = rng.integers(lo, scales[:, None] + 1, size=(n_fields, fan_in))
    sparse = rng.random((n_fields, fan_in)) < 0.3          # ReLU zeros
    return np.where(sparse, lo, x).astype(np.int64)


def layer_stats(rng: np.random.Generator, fields: np.ndarray, weights: np.ndarray,
                name: str = "layer") -> OperandStats:
    """OperandStats of synthetic operands (output std is irrelevant to the predictions)."""
    return OperandStats.from_operands(name, weights, fields, multiplications=fields.shape[1] * 10,
                                      out_std=1.0, out_mean=0.0, seed=0)


def mc_iid(err_of, fields: np.ndarray, weights: np.ndarray, trials: int, seed: int):
    """Dot-product error with x drawn from the pooled activations, w from the weights."""
    rng = np.random.default_rng(seed)
    n = fields.shape[1]
    x = rng.choice(fields.ravel(), size=(trials, n))
    w = rng.choice(weights.ravel(), size=(trials, n))
    e = err_of(x, w).sum(axis=1)
    return e.mean(), e.std()


def mc_population(err_of, fields: np.ndarray, weights: np.ndarray, trials: int, seed: int):
    """Pick a field, draw x i.i.d. from that field's values and w from the weights."""
    rng = np.random.default_rng(seed)
    n_f, n = fields.shape
    k = rng.integers(0, n_f, size=trials)
    x = fields[k[:, None], rng.integers(0, n, size=(trials, n))]
    w = rng.choice(weights.ravel(), size=(trials, n))
    e = err_of(x, w).sum(axis=1)
    return e.mean(), e.std()


def mc_fixed_field(err_of, fields: np.ndarray, weights: np.ndarray, trials: int, seed: int):
    """Pick a field, keep its activations, draw only the weights (a neuron with random weights)."""
    rng = np.random.default_rng(seed)
    n_f, n = fields.shape
    x = fields[rng.integers(0, n_f, size=trials)]
    w = rng.choice(weights.ravel(), size=(trials, n))
    e = err_of(x, w).sum(axis=1)
    return e.mean(), e.std()


def _err_of(m):
    return lambda x, w: m(x, w) - x * w


def _synthetic(seed, fan_in=27, n_fields=48, x_hi=255):
    rng = np.random.default_rng(seed)
    fields = scaled_fields(rng, n_fields, fan_in, hi=x_hi)
    weights = np.clip(np.round(rng.normal(0, 30, size=(8, fan_in))), -127, 127).astype(np.int64)
    return fields, weights, layer_stats(rng, fields, weights)


def _biased_random_multiplier(seed):
    rng = np.random.default_rng(seed)
    xs, ws = np.arange(256)[:, None], np.arange(-128, 128)[None, :]
    noise = rng.integers(-300, 301, size=(256, 256)) + (xs // 4) * np.sign(ws)
    return TableMultiplier("test:rand", xs * ws + noise, hwlib.UINT8, INT8, EXACT_POWER)


def mc_channel(err_of, fields: np.ndarray, weights: np.ndarray, trials: int, seed: int):
    """Pick a field and an output channel, keep the field's activations, draw every weight from
    that channel's own weights."""
    rng = np.random.default_rng(seed)
    n_f, n = fields.shape
    x = fields[rng.integers(0, n_f, size=trials)]
    c = rng.integers(0, weights.shape[0], size=trials)
    w = weights[c[:, None], rng.integers(0, weights.shape[1], size=(trials, n))]
    e = err_of(x, w).sum(axis=1)
    return e.mean(), e.std()


def _channel_weights(rng, n_channels, fan_in):
    """Output channels whose weights differ in mean and spread (as trained channels do)."""
    centre = rng.integers(-60, 61, size=(n_channels, 1))
    spread = rng.integers(5, 40, size=(n_channels, 1))
    return np.clip(np.round(centre + spread * rng.standard_normal((n_channels, fan_in))),
                   -127, 127).astype(np.int64)


@pytest.mark.parametrize("spec", ["marlin:15", "marlin:255", "evo:mul8s_1L2N", "random"])
def test_channel_formula_matches_monte_carlo_of_its_model(spec):
    rng = np.random.default_rng(30)
    fields = scaled_fields(rng, 40, 27, hi=127)
    weights = _channel_weights(rng, 6, 27)
    st = layer_stats(rng, fields, weights)
    assert st.channel_hists.shape == (6, 256)
    m = _biased_random_multiplier(7) if spec == "random" else hwlib.get(spec)
    pred = predict([st], ErrorCatalog.build([m]), Method.CHANNEL)
    mc_mean, mc_std = mc_channel(_err_of(m), fields, weights, TRIALS, seed=3)
    assert pred.std[0, 0] == pytest.approx(mc_std, rel=0.03)
    assert pred.mean[0, 0] == pytest.approx(mc_mean, abs=4 * mc_std / np.sqrt(TRIALS))
    fixed = predict([st], ErrorCatalog.build([m]), Method.FIXED_FIELD).std[0, 0]
    assert fixed < pred.std[0, 0]     # channel offsets add variance the per-tap model misses


def test_channel_formula_equals_fixed_field_for_identical_channels():
    rng = np.random.default_rng(31)
    fields = scaled_fields(rng, 20, 16)
    row = rng.integers(-100, 101, size=16)
    st = layer_stats(rng, fields, np.stack([rng.permutation(row) for _ in range(5)]))
    cat = ErrorCatalog.build(["marlin:0", "marlin:63", "marlin:255"])
    np.testing.assert_allclose(predict([st], cat, "channel").std,
                               predict([st], cat, "fixed_field").std, rtol=1e-9)


def test_channel_formula_needs_channel_histograms():
    rng = np.random.default_rng(32)
    st = layer_stats(rng, scaled_fields(rng, 4, 9), rng.integers(-5, 5, size=50))
    assert st.channel_hists is None
    with pytest.raises(ValueError, match="no per-channel weight histograms"):
        predict([st], ErrorCatalog.build(["marlin:3"]), "channel")


@pytest.mark.parametrize("spec", ["marlin:15", "marlin:127", "marlin:255", "random"])
@pytest.mark.parametrize("method, simulate", [(Method.IID, mc_iid),
                                              (Method.POPULATION, mc_population),
                                              (Method.FIXED_FIELD, mc_fixed_field)])
def test_formula_matches_monte_carlo_of_its_model(spec, method, simulate):
    fields, weights, st = _synthetic(10)
    m = _biased_random_multiplier(7) if spec == "random" else hwlib.get(spec)
    pred = predict([st], ErrorCatalog.build([m]), method)
    mc_mean, mc_std = simulate(_err_of(m), fields, weights, TRIALS, seed=1)
    # standard error of the MC std is about std / sqrt(2 T) = 0.35 %; of the mean std / sqrt(T)
    assert pred.std[0, 0] == pytest.approx(mc_std, rel=0.03)
    assert pred.mean[0, 0] == pytest.approx(mc_mean, abs=4 * mc_std / np.sqrt(TRIALS))


def test_population_beats_iid_on_biased_multiplier_with_neuron_dependent_scales():
    """Neurons with fixed activations of different scales and weights from the layer: iid misses
    the spread of the per-neuron mean error; the population and fixed-field formulas do not."""
    fields, weights, st = _synthetic(20, fan_in=75, n_fields=64)
    m = hwlib.get("marlin:255")
    pred = {meth: predict([st], ErrorCatalog.build([m]), meth).std[0, 0] for meth in Method}
    _, measured = mc_fixed_field(_err_of(m), fields, weights, TRIALS, seed=2)
    iid_err = abs(pred[Method.IID] / measured - 1)
    pop_err = abs(pred[Method.POPULATION] / measured - 1)
    assert pop_err < 0.10
    assert abs(pred[Method.FIXED_FIELD] / measured - 1) < 0.03
    assert iid_err > 0.3 and iid_err > 4 * pop_err, (iid_err, pop_err)


def test_error_moments_match_per_pair_loop():
    rng = np.random.default_rng(3)
    errors = rng.integers(-50, 50, size=(3, 5, 4))
    q = rng.random((2, 4))
    q /= q.sum(axis=1, keepdims=True)
    a, e2 = error_moments(errors, q)
    for lyr in range(2):
        for m in range(3):
            for x in range(5):
                assert a[lyr, m, x] == pytest.approx(sum(q[lyr, w] * errors[m, x, w]
                                                         for w in range(4)))
                assert e2[lyr, m, x] == pytest.approx(sum(q[lyr, w] * errors[m, x, w] ** 2
                                                          for w in range(4)))


def test_catalog_prediction_equals_one_multiplier_at_a_time():
    rng = np.random.default_rng(4)
    stats = []
    for i, fan in enumerate((9, 40, 150)):
        f = scaled_fields(rng, 16 + i, fan)
        w = rng.integers(-90, 91, size=(3, fan))
        stats.append(layer_stats(rng, f, w, name=f"l{i}"))
    specs = [f"marlin:{lv}" for lv in (0, 1, 15, 63, 127, 128, 255)]
    cat = ErrorCatalog.build(specs)
    assert cat.specs == tuple(specs) and cat.exact_index == 0
    assert ErrorCatalog.build(cat.catalog).catalog is cat.catalog  # built on the one Catalog
    np.testing.assert_array_equal(cat.relative_power, cat.catalog.relative_power)
    for meth in Method:
        full = predict(stats, cat, meth)
        for j, s in enumerate(specs):
            one = predict(stats, ErrorCatalog.build([s, "marlin:0"]), meth)
            np.testing.assert_allclose(full.std[:, j], one.std[:, 0], rtol=1e-12)
            np.testing.assert_allclose(full.mean[:, j], one.mean[:, 0], rtol=1e-12)
        assert np.all(full.std[:, 0] == 0) and np.all(full.mean[:, 0] == 0)
        np.testing.assert_allclose(full.rms, np.hypot(full.std, full.mean))


def test_operands_outside_a_multiplier_domain_make_it_infeasible():
    rng = np.random.default_rng(5)
    xs, ws = np.arange(128)[:, None], np.arange(-128, 128)[None, :]
    narrow = TableMultiplier("test:uint7", xs * ws + 1, UINT7, INT8, EXACT_POWER)
    cat = ErrorCatalog.build([narrow])
    assert cat.specs == ("test:uint7", "exact") and cat.exact_index == 1
    w = rng.integers(-5, 5, size=(1, 9))
    low = layer_stats(rng, rng.integers(0, 128, size=(4, 9)), w, "low")
    high = layer_stats(rng, rng.integers(0, 256, size=(4, 9)), w, "high")
    pred = predict([low, high], cat)
    np.testing.assert_array_equal(pred.feasible, [[True, True], [False, True]])
    assert pred.mean[0, 0] == pytest.approx(9.0) and pred.std[0, 0] == pytest.approx(0.0)
    assert np.isinf(pred.std[1, 0]) and np.isnan(pred.mean[1, 0]) and np.isinf(pred.rms[1, 0])


def test_bad_method_and_empty_stats_raise():
    cat = ErrorCatalog.build(["marlin:3"])
    with pytest.raises(ValueError, match="method 'gauss' unknown"):
        predict([OperandStats.from_operands("a", np.zeros(3, int), np.zeros((1, 3), int),
                                            multiplications=3, out_std=0.0, out_mean=0.0,
                                            seed=0)], cat, "gauss")
    with pytest.raises(ValueError, match="at least one layer"):
        predict([], cat)
