"""MARLIN: closed form vs an independent bit-level partial-product array; docs/marlin.md; CSR."""
import time

import numpy as np
import pytest

import hwlib
from hwlib import marlin
from hwlib.domain import INT9
from hwlib.errors import DomainError, SpecError
from hwlib.multiplier import Multiplier

N = 9  # operand width of the hardware


def pp_array_product(x: np.ndarray, y: np.ndarray, level: int) -> np.ndarray:
    """Bit-level model: modified Baugh-Wooley 9x9 array, approximated columns, 18-bit result.

    Written without the closed form: every partial-product bit is built and summed by column.
    """
    x, y = np.broadcast_arrays(np.asarray(x, np.int64), np.asarray(y, np.int64))
    xb = [(x >> j) & 1 for j in range(N)]  # two's complement bits, bit 8 is the sign
    yb = [(y >> i) & 1 for i in range(N)]
    columns = [np.zeros(x.shape, np.int64) for _ in range(2 * N)]
    for i in range(N):
        for j in range(N):
            bit = xb[j] & yb[i]
            if (i == N - 1) != (j == N - 1):  # exactly one sign bit: inverted (Baugh-Wooley)
                bit = 1 - bit
            k = i + j
            if k <= 7 and (level >> k) & 1:
                bit = np.zeros_like(bit)  # approximated column: forced to 0
            columns[k] = columns[k] + bit
    total = sum(c << k for k, c in enumerate(columns))
    total = total + (1 << N) + (1 << (2 * N - 1))  # Baugh-Wooley constants
    total = total + sum(1 << k for k in range(2, 8) if (level >> k) & 1)  # injected 2^k
    total &= (1 << 2 * N) - 1
    signed = total - ((total >> (2 * N - 1)) << (2 * N))
    return np.where((x == 0) | (y == 0), 0, signed)


EDGES = np.array([0, 1, -1, 2, -2, 127, -128, 128, -129, 255, -256, 254, -255, 85, -86])


def test_pp_model_is_exact_at_level_0_on_full_domain():
    xs = INT9.values()
    np.testing.assert_array_equal(pp_array_product(xs[:, None], xs[None, :], 0),
                                  xs[:, None] * xs[None, :])


@pytest.mark.parametrize("chunk", range(4))
def test_closed_form_matches_pp_array_every_level(chunk):
    rng = np.random.default_rng(chunk)
    x = np.concatenate([np.repeat(EDGES, EDGES.size), rng.integers(-256, 256, 3000)])
    y = np.concatenate([np.tile(EDGES, EDGES.size), rng.integers(-256, 256, 3000)])
    for level in range(chunk * 64, chunk * 64 + 64):
        np.testing.assert_array_equal(marlin.approx(x, y, level), pp_array_product(x, y, level),
                                      err_msg=f"level {level}")


@pytest.mark.parametrize("level", [0, 1, 3, 15, 77, 128, 200, 255])
def test_closed_form_matches_pp_array_exhaustively(level):
    xs = INT9.values()
    np.testing.assert_array_equal(marlin.approx(xs[:, None], xs[None, :], level),
                                  pp_array_product(xs[:, None], xs[None, :], level))


@pytest.mark.parametrize("x,y,level,want", [(100, 100, 15, 10012), (1, 1, 255, 252),
                                            (3, -3, 3, -12), (17, -1, 4, -17)])
def test_vectors_of_marlin_md(x, y, level, want):
    assert int(marlin.approx(np.array(x), np.array(y), level)) == want
    assert int(pp_array_product(np.array(x), np.array(y), level)) == want


# level, MAE, error probability, worst-case error, power / level-0 power (docs/marlin.md)
MARLIN_MD = [(1, 0.25, 0.250, 1, 0.999), (3, 1.25, 0.500, 5, 0.985), (15, 7.80, 0.902, 37, 0.930),
             (63, 42.81, 0.979, 261, 0.826), (127, 101.94, 0.989, 645, 0.759),
             (128, 153.13, 0.729, 896, 0.948), (255, 244.42, 0.994, 1541, 0.681)]


@pytest.mark.parametrize("level,mae,ep,wce,rel", MARLIN_MD)
def test_marlin_md_table_on_full_signed_domain(level, mae, ep, wce, rel):
    m = marlin.Marlin(level, x_domain=INT9, w_domain=INT9)
    e = m.error_table()
    assert round(float(np.abs(e).mean()), 2) == mae
    assert round(float((e != 0).mean()), 3) == ep
    assert int(np.abs(e).max()) == wce
    assert round(m.relative_power, 3) == rel


def test_power_table_endpoints():
    assert hwlib.get("marlin:0").power_mw == pytest.approx(0.24118, abs=1e-5)
    assert hwlib.get("marlin:255").power_mw == pytest.approx(0.16435, abs=1e-5)
    assert hwlib.get("marlin:255").power.source.startswith("MARLIN UMC 65 nm")
    assert not hwlib.get("marlin:255").power.proxy


def test_csr_words_of_marlin_md():
    assert marlin.csr_word(0) == 0xFFFC07F8
    assert marlin.csr_word(255) == 0xFFFC0000


def test_decode_inverts_encode_for_all_levels_and_enables():
    for level in range(256):
        for en in range(8):
            d = marlin.decode_csr_word(marlin.csr_word(level, en))
            assert (d.level, d.enable_mul, d.enable_mac, d.enable_simd, d.precision_mask) == (
                level, bool(en & 1), bool(en & 2), bool(en & 4), 0x3FFF)
            assert marlin.csr_word(d.level, en) == marlin.csr_word(level, en)


def test_bad_levels_and_words_are_refused():
    with pytest.raises(DomainError, match="256"):
        marlin.csr_word(256)
    with pytest.raises(DomainError, match="-1"):
        marlin.Marlin(-1)
    with pytest.raises(SpecError, match="256"):
        hwlib.get("marlin:256")
    with pytest.raises(SpecError, match="'abc'"):
        hwlib.get("marlin:abc")
    with pytest.raises(DomainError, match="enables"):
        marlin.csr_word(3, enables=8)
    with pytest.raises(DomainError, match="reserved"):
        marlin.decode_csr_word(marlin.csr_word(3) | (1 << 12))
    with pytest.raises(DomainError, match="256"):
        hwlib.get("marlin:3")(np.array([256]), np.array([1]))


def test_factors_exact_small_and_in_range_every_level():
    cases = [(lv, hwlib.UINT8, hwlib.INT8) for lv in range(256)]
    cases += [(lv, INT9, INT9) for lv in (1, 3, 15, 128, 252, 255)]
    for level, xd, wd in cases:
        m = marlin.Marlin(level, xd, wd)
        f = m.factors()
        np.testing.assert_array_equal(f.error_table(), m.error_table(), err_msg=str(level))
        assert f.rank == (level.bit_length()) + (1 if level & 0xFC else 0)
        assert 0 <= f.f_range[0] and f.f_range[1] <= 255
        assert -128 <= f.g_range[0] and f.g_range[1] <= 1


def test_batched_metrics_equal_per_level_metrics_and_are_fast():
    marlin.level_metrics.cache_clear()
    t0 = time.perf_counter()
    batch = [hwlib.get(f"marlin:{lv}").metrics() for lv in range(256)]
    assert time.perf_counter() - t0 < 10.0
    for lv in (0, 1, 15, 100, 128, 255):
        m = hwlib.get(f"marlin:{lv}")
        slow = Multiplier.metrics(m)
        for k, v in slow.items():
            assert batch[lv][k] == pytest.approx(v, rel=1e-9, abs=1e-9), (lv, k)
    assert batch[0] == {k: 0.0 for k in batch[0]}
