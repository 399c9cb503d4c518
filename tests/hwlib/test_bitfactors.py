"""bilinear_factors: exact for any coefficient matrix, small ranges for partial-product forms."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hwlib.bitfactors import bilinear_factors, bits, weights_of
from hwlib.domain import INT8, UINT8

SIGNS = st.lists(st.sampled_from([-1, 0, 1]), min_size=64, max_size=64)


def _direct(coef, xs, ws):
    """sum_ij coef[i, j] a_i(x) b_j(w), pair by pair over the whole table."""
    xb, wb = bits(xs), bits(ws)
    return np.einsum("ij,ix,jw->xw", coef, xb, wb)


@settings(max_examples=40, deadline=None)
@given(SIGNS, st.booleans())
def test_partial_product_coefficients_factor_exactly_in_range(signs, signed):
    i, j = np.indices((8, 8))
    coef = np.array(signs).reshape(8, 8) << (i + j)
    xs = (INT8 if signed else UINT8).values()
    ws = INT8.values()
    f = bilinear_factors(coef, xs, ws)
    np.testing.assert_array_equal(f.error_table(), _direct(coef, xs, ws))
    assert 0 <= f.f_range[0] and f.f_range[1] <= 255
    assert -128 <= f.g_range[0] and f.g_range[1] <= 128
    assert f.rank <= 16


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=64, max_size=64),
       st.integers(-300, 300))
def test_any_integer_coefficients_and_extra_terms_factor_exactly(values, c):
    coef = np.array(values).reshape(8, 8)
    xs, ws = UINT8.values(), INT8.values()
    extra = [(np.full(xs.size, c), (ws != 0).astype(np.int64))]
    f = bilinear_factors(coef, xs, ws, extra)
    want = _direct(coef, xs, ws) + c * (ws != 0)[None, :]
    np.testing.assert_array_equal(f.error_table(), want)


def test_weights_of_drops_what_is_not_kept():
    keep = np.ones((8, 8), bool)
    keep[0, 0] = keep[7, 3] = False
    w = weights_of(keep, signed=True)
    assert w[0, 0] == -1 and w[7, 3] == 2**10  # a dropped negative product adds back
    assert np.count_nonzero(w) == 2
