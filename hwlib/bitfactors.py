"""Exact low-rank factors of error tables that are bilinear in operand bits.

Many circuits drop (or re-weight) partial products ``a_i b_j 2^(i+j)``; their error is
``sum_ij C[i, j] a_i(x) b_j(w)`` plus a few constant-like terms, which factor exactly into a handful
of activation features ``f_r(x)`` and weight features ``g_r(w)``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwlib.multiplier import ErrorFactors

G_LIMIT = 128  # merged weight features stay within [-G_LIMIT, G_LIMIT]


def bits(values: np.ndarray, n: int = 8) -> np.ndarray:
    """Bits 0..n-1 of the two's-complement ``values`` as a 0/1 int64 array (n, values.size)."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    return (v[None, :] >> np.arange(n, dtype=np.int64)[:, None]) & 1


def bilinear_factors(coef: np.ndarray, x_values: np.ndarray, w_values: np.ndarray,
                     extra: Sequence[tuple[np.ndarray, np.ndarray]] = ()) -> ErrorFactors:
    """Factors of ``e(x, w) = sum_ij coef[i, j] a_i(x) b_j(w) + sum_t f_t(x) g_t(w)``.

    ``a_i``/``b_j`` are bits of the low 8 bits of the two's-complement operands. Each weight bit j
    with a non-zero column gives at most two terms, ``f = sum_i |coef[i, j]| / s_j a_i`` (split by
    sign) and ``g = +-s_j b_j`` with ``s_j`` the largest power of two (at most 128) dividing the
    column; terms with identical ``f`` are merged while the summed ``g`` stays within
    [-128, 128]. With power-of-two coefficients ``2^(i+j)`` this gives ``f`` in [0, 255] and
    ``g`` in [-128, 128].

    Args:
        coef: int (8, 8) coefficients, row = activation bit i, column = weight bit j.
        x_values: activation domain values (n_x,).
        w_values: weight domain values (n_w,).
        extra: further exact terms ``(f (n_x,), g (n_w,))`` appended as they are.
    """
    coef = np.asarray(coef, dtype=np.int64)
    xb, wb = bits(x_values), bits(w_values)
    terms: list[tuple[np.ndarray, np.ndarray]] = []
    for j in range(coef.shape[1]):
        col = coef[:, j]
        if not col.any():
            continue
        nz = np.abs(col[col != 0])
        scale = min(int(nz.min() & -nz.min()), G_LIMIT)  # a power of two dividing every entry
        while np.any(nz % scale):
            scale //= 2
        for sign in (1, -1):
            part = np.where(sign * col > 0, sign * col // scale, 0)
            if part.any():
                terms.append((part @ xb, sign * scale * wb[j]))
    terms.extend((np.asarray(f, np.int64), np.asarray(g, np.int64)) for f, g in extra)
    merged: list[list[np.ndarray]] = []
    for f, g in terms:
        if not f.any() or not g.any():
            continue
        for m in merged:
            if np.array_equal(m[0], f) and np.abs(m[1] + g).max() <= G_LIMIT:
                m[1] = m[1] + g
                break
        else:
            merged.append([f, g])
    merged = [m for m in merged if m[1].any()]
    n_x, n_w = np.size(x_values), np.size(w_values)
    f_arr = np.array([m[0] for m in merged], np.int64).reshape(len(merged), n_x)
    g_arr = np.array([m[1] for m in merged], np.int64).reshape(len(merged), n_w)
    return ErrorFactors(f_arr, g_arr)


def product_signs(signed: bool) -> np.ndarray:
    """Sign of each partial product ``a_i b_j 2^(i+j)`` in an 8x8 multiplier, int64 (8, 8).

    Two's complement (``signed``): -1 where exactly one of i, j is 7 (Baugh-Wooley), else +1.
    """
    s = np.ones((8, 8), dtype=np.int64)
    if signed:
        s[7, :7] = s[:7, 7] = -1
    return s


def weights_of(keep: np.ndarray, signed: bool) -> np.ndarray:
    """Error coefficients ``-sign_ij 2^(i+j)`` of the partial products NOT kept (bool (8, 8))."""
    i, j = np.indices((8, 8))
    return np.where(np.asarray(keep, bool), 0, -product_signs(signed) * (1 << (i + j)))
