import numpy as np
import pytest

import hwlib
from errormodels import (
    ACT_DOMAIN,
    WEIGHT_DOMAIN,
    ErrorCatalog,
    OperandStats,
    StatsError,
    align,
    error_grid,
    histogram,
    load_stats,
    predict,
    save_stats,
)
from hwlib import INT8, INT9, UINT7, UINT8, Domain, TableMultiplier
from hwlib.marlin import Marlin
from hwlib.power import EXACT_POWER


def _g(x, w):
    """Closed-form error used to build test tables: evaluated on operand values, not indices."""
    return (np.asarray(x) * 7919 + np.asarray(w) * 104729) % 81 - 40


def _random_table_multiplier(x_domain, w_domain):
    xs, ws = x_domain.values()[:, None], w_domain.values()[None, :]
    return TableMultiplier("test:g", xs * ws + _g(xs, ws), x_domain, w_domain, EXACT_POWER)


@pytest.mark.parametrize("domain", [UINT8, INT8, UINT7, INT9, Domain("odd", -3, 17)])
def test_histogram_counts_value_at_value_minus_lo(domain):
    rng = np.random.default_rng(1)
    v = rng.integers(domain.lo, domain.hi + 1, size=(7, 50))
    h = histogram(v, domain, axis=-1)
    assert h.shape == (7, domain.size)
    for r in range(7):
        for i in range(domain.size):
            assert h[r, i] == np.count_nonzero(v[r] == domain.lo + i)
    np.testing.assert_array_equal(histogram(v, domain), h.sum(axis=0))


def test_histogram_rejects_values_outside_domain():
    with pytest.raises(ValueError, match="value 256 outside"):
        histogram(np.array([0, 256]), UINT8)


@pytest.mark.parametrize("x_domain", [UINT8, INT9, UINT7])
def test_aligned_histogram_indexes_the_table_rows(x_domain):
    """A histogram over the stats domain, aligned to the table's domain, weights the right rows.

    The per-pair reference evaluates the multiplier on the operand values themselves, so an
    index shift (the reference code's +128 defect) changes the result.
    """
    rng = np.random.default_rng(2)
    m = _random_table_multiplier(x_domain, INT8)
    lo, hi = max(x_domain.lo, 0), min(x_domain.hi, 255)
    x = rng.integers(lo, hi + 1, size=400)
    w = rng.integers(-128, 128, size=400)
    px = align(histogram(x, ACT_DOMAIN), ACT_DOMAIN, x_domain) / x.size
    qw = align(histogram(w, WEIGHT_DOMAIN), WEIGHT_DOMAIN, m.w_domain) / w.size
    via_table = px @ m.error_table() @ qw
    per_pair = np.mean(_g(x[:, None], w[None, :]))
    assert via_table == pytest.approx(per_pair, rel=1e-12, abs=1e-12)


def test_signed_activation_histogram_aligns_onto_int9_rows():
    rng = np.random.default_rng(3)
    m = Marlin(77, x_domain=INT9)
    x = rng.integers(-256, 256, size=300)
    w = rng.integers(-128, 128, size=300)
    px = histogram(x, INT9) / x.size
    qw = histogram(w, INT8) / w.size
    per_pair = np.mean(m(x[:, None], w[None, :]) - x[:, None] * w[None, :])
    assert px @ m.error_table() @ qw == pytest.approx(per_pair, rel=1e-12)


def test_align_rejects_mass_outside_target_domain():
    h = histogram(np.array([3, 200]), UINT8)
    with pytest.raises(StatsError, match="value 200, outside the target domain uint7"):
        align(h, UINT8, UINT7)
    np.testing.assert_array_equal(align(h, UINT8, UINT7, strict=False)[[3, 127]], [1, 0])


@pytest.mark.parametrize("x_domain", [UINT8, UINT7, INT9])
def test_error_grid_matches_per_pair_evaluation(x_domain):
    m = _random_table_multiplier(x_domain, INT8)
    grid, xs, ws = error_grid(m)
    assert ws.all()
    x = np.arange(256)[:, None]                 # operand values, not indices
    w = np.arange(-128, 128)[None, :]
    inside = (x_domain.lo <= x) & (x <= x_domain.hi)
    np.testing.assert_array_equal(xs, inside[:, 0])
    np.testing.assert_array_equal(grid, np.where(inside, _g(x, w), 0))


def test_single_value_field_predicts_that_rows_error():
    """A field holding only value v predicts n * mean_w e(v, w), for v across the uint8 range."""
    m = hwlib.get("marlin:200")
    cat = ErrorCatalog.build([m])
    w = np.arange(-128, 128)
    for v in (0, 1, 127, 128, 255):
        st = OperandStats.from_operands("l", w, np.full((1, 9), v), multiplications=90,
                                        out_std=1.0, out_mean=0.0, seed=0)
        pred = predict([st], cat, "iid")
        direct = 9 * np.mean(m(np.full(256, v), w) - v * w)
        assert pred.mean[0, 0] == pytest.approx(direct, abs=1e-9)


def _stats(rng, name, n_fields=5, fan_in=12):
    return OperandStats.from_operands(
        name, rng.integers(-128, 128, size=(4, fan_in)),
        rng.integers(0, 256, size=(n_fields, fan_in)), multiplications=fan_in * 30,
        out_std=float(rng.random() * 100), out_mean=float(rng.normal()), seed=11, zero_point=3)


def test_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    pooled = OperandStats.from_operands("pooled", rng.integers(-9, 9, size=30),
                                        rng.integers(0, 256, size=(2, 7)), multiplications=70,
                                        out_std=1.0, out_mean=0.0, seed=1)
    stats = [_stats(rng, "conv1", 5), pooled, _stats(rng, "fc.2", 3, 40)]
    assert stats[0].channel_hists.shape == (4, 256) and pooled.channel_hists is None
    path = save_stats(tmp_path / "run" / "operand_stats.npz", stats)
    back = load_stats(path.parent)
    assert [s.name for s in back] == ["conv1", "pooled", "fc.2"]
    assert back[1].channel_hists is None
    for a, b in zip(stats, back):
        np.testing.assert_array_equal(a.weight_hist, b.weight_hist)
        np.testing.assert_array_equal(a.field_hists, b.field_hists)
        if a.channel_hists is not None:
            np.testing.assert_array_equal(a.channel_hists, b.channel_hists)
        assert (a.fan_in, a.multiplications, a.out_std, a.out_mean, a.seed, a.zero_point) == \
            (b.fan_in, b.multiplications, b.out_std, b.out_mean, b.seed, b.zero_point)
    assert sorted(f.name for f in path.parent.iterdir()) == ["operand_stats.npz"]


def test_malformed_files_raise_stats_error(tmp_path):
    with pytest.raises(StatsError, match="no file"):
        load_stats(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(StatsError, match="not a readable .npz"):
        load_stats(junk)
    partial = tmp_path / "partial.npz"
    np.savez(partial, names=np.array(["a"]))
    with pytest.raises(StatsError, match="missing arrays"):
        load_stats(partial)
    rng = np.random.default_rng(6)
    good = save_stats(tmp_path / "good.npz", [_stats(rng, "a")])
    data = dict(np.load(good))
    data["n_fields"] = np.array([99])
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(StatsError, match="disagree"):
        load_stats(tmp_path / "bad.npz")


def test_record_validation_names_the_bad_value():
    w, f = np.zeros(256, np.int64), np.zeros((2, 256), np.int64)
    w[128] = 1
    f[:, 0] = 9
    ok = dict(fan_in=9, multiplications=90, out_std=1.0, out_mean=0.0, seed=0)
    OperandStats("a", w, f, **ok)
    with pytest.raises(StatsError, match="field 1 holds 8 activations, expected fan_in=9"):
        f2 = f.copy()
        f2[1, 0] = 8
        OperandStats("a", w, f2, **ok)
    with pytest.raises(StatsError, match=r"weight_hist must be integer counts of shape \(256,\)"):
        OperandStats("a", w[:128], f, **ok)
    with pytest.raises(StatsError, match="out_std=nan"):
        OperandStats("a", w, f, **{**ok, "out_std": float("nan")})
    with pytest.raises(StatsError, match="channel_hists must be integer counts"):
        OperandStats("a", w, f, **ok, channel_hists=np.stack([w, w]))
    with pytest.raises(StatsError, match="duplicate layer names"):
        save_stats("/nonexistent/x.npz", [OperandStats("a", w, f, **ok)] * 2)
