"""Error-mean compensation: predicted per-channel mean error against measured integers."""
from __future__ import annotations

import numpy as np
import pytest

import errormodels as em
import hwlib


def _errors(spec: str, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    m = hwlib.get(spec)
    return m(x, w).astype(np.int64) - x.astype(np.int64) * w.astype(np.int64)


@pytest.mark.parametrize("spec", ["marlin:255", "marlin:15", "evo:mul8s_1L2N", "bam:v5h2"])
def test_channel_mean_equals_measured_mean_over_cyclic_fields(spec):
    """Fields that are the n cyclic shifts of one activation vector put every value at every
    position once, so the measured mean accumulated error equals the prediction exactly."""
    rng = np.random.default_rng(0)
    m = hwlib.get(spec)
    n, c = 25, 6
    xs = rng.integers(0, min(m.x_domain.hi, 255) + 1, n)
    w = rng.integers(max(m.w_domain.lo, -127), min(m.w_domain.hi, 127) + 1, (c, n))
    fields = np.stack([np.roll(xs, k) for k in range(n)])               # (n fields, n taps)
    measured = np.stack([_errors(spec, fields, np.broadcast_to(w[ch], fields.shape)).sum(axis=1)
                         for ch in range(c)])                            # (C, fields) integers
    pmf = em.histogram(xs, em.ACT_DOMAIN) / n
    predicted = em.channel_error_means(w, pmf, spec)
    # the sums are integers over n fields: predicted * n must be that integer exactly
    assert np.array_equal(np.rint(predicted * n).astype(np.int64), measured.sum(axis=1))
    assert np.allclose(predicted, measured.mean(axis=1), rtol=0, atol=1e-9)
    assert np.array_equal(em.bias_corrections(w, pmf, spec), np.rint(predicted))


def test_channel_mean_matches_random_iid_data():
    rng = np.random.default_rng(1)
    spec, n, c, samples = "marlin:200", 32, 4, 4000
    p = rng.dirichlet(np.ones(256) * 0.3)
    w = rng.integers(-127, 128, (c, n))
    x = rng.choice(256, size=(samples, n), p=p)
    acc = np.stack([_errors(spec, x, np.broadcast_to(w[ch], x.shape)).sum(axis=1)
                    for ch in range(c)])                                 # (C, samples)
    predicted = em.channel_error_means(w, p, spec)
    se = acc.std(axis=1) / np.sqrt(samples)
    assert np.all(np.abs(acc.mean(axis=1) - predicted) < 5 * se + 1e-9)
    assert np.all(np.abs(predicted) > 10 * se)  # the multiplier is biased: the test can fail


def _stats(rng, c=8, n=27, fields=32):
    w = rng.integers(-60, 61, (c, n))
    f = rng.integers(0, 128, (fields, n))
    return em.OperandStats.from_operands("l0", w, f, multiplications=n * c * 10, out_std=500.0,
                                         out_mean=0.0, seed=0)


def test_compensated_prediction_has_zero_mean_and_less_spread():
    rng = np.random.default_rng(2)
    st = _stats(rng)
    cat = em.ErrorCatalog.build(["exact", "evo:mul8s_1L2N", "evo:mul8s_1L2L", "bam:v5h2"])
    pred = em.predict([st], cat)
    comp = em.compensated(pred, [st], cat)
    assert np.all(comp.mean == 0.0)
    assert np.all(comp.std <= pred.std + 1e-9)
    assert comp.std[0, cat.exact_index] == 0.0
    # the removed variance is the spread of the channel means
    w_hist = st.channel_hists
    pbar = em.activation_pmf(st)
    j = cat.specs.index("evo:mul8s_1L2N")
    mu = w_hist @ (pbar @ cat.float_errors[j])
    assert comp.std[0, j] ** 2 == pytest.approx(pred.std[0, j] ** 2 - mu.var(), rel=1e-9)
    fixed = em.predict([st], cat, "fixed_field")
    assert np.array_equal(em.compensated(fixed, [st], cat).std, fixed.std)


def test_match_with_compensation_is_never_more_expensive_under_rms():
    rng = np.random.default_rng(3)
    st = _stats(rng)
    cat = em.ErrorCatalog.build("evo:mul8s_*")
    sig = [em.LayerSigma("l0", 0.3, st.multiplications)]
    plain = em.match(sig, [st], cat, metric="rms")
    comp = em.match(sig, [st], cat, metric="rms", compensate=True)
    assert comp.energy <= plain.energy
    assert comp.layers[0].predicted_mean == 0.0


def test_compensation_object_caches_and_names_missing_layers():
    rng = np.random.default_rng(4)
    st = _stats(rng)
    comp = em.Compensation.from_stats([st])
    w = rng.integers(-60, 61, (8, 27))
    a = comp.correction("l0", w, "evo:mul8s_1L2N")
    assert a is comp.correction("l0", w, "evo:mul8s_1L2N")
    assert not np.any(comp.correction("l0", w, "exact"))
    with pytest.raises(em.StatsError, match="no input distribution for layer 'nope'"):
        comp.correction("nope", w, "exact")


def test_shifted_corrections_of_blocks_sum_each_blocks_multiplier():
    from hwlib.blocks import Block

    rng = np.random.default_rng(3)
    w = rng.integers(-100, 101, (4, 6, 3, 3))
    p = rng.dirichlet(np.ones(256))
    a, b = "evo:mul8s_1L2N", "evo:mul8s_1KX5"
    assert np.array_equal(em.shifted_corrections(w, p, a), em.bias_corrections(w, p, a))
    filters = (Block(out=(0, 2), multiplier=a), Block(out=(2, 4), multiplier=b))
    got = em.shifted_corrections(w, p, filters, offset=2, hi=127)
    assert np.array_equal(got[:2], em.shifted_corrections(w[:2], p, a, 2, 127))
    assert np.array_equal(got[2:], em.shifted_corrections(w[2:], p, b, 2, 127))
    kernels = tuple(Block(out=(o, o + 2), inp=(i, i + 3), multiplier=a)
                    for o in (0, 2) for i in (0, 3))  # one multiplier in every block: unsplit
    assert np.array_equal(em.shifted_corrections(w, p, kernels), em.bias_corrections(w, p, a))
