"""Multipliers keeping a subset of the 8x8 partial-product array (BAM, truncation, perforation)."""
from __future__ import annotations

import numpy as np

from hwlib.bitfactors import bilinear_factors, product_signs, weights_of
from hwlib.domain import INT8, UINT8
from hwlib.multiplier import ErrorFactors, Multiplier
from hwlib.power import Power, partial_product_proxy


class PartialProductArray(Multiplier):
    """An 8x8 array multiplier keeping partial products ``a_i b_j 2^(i+j)`` where ``keep[i, j]``.

    ``i`` indexes bits of the first operand ``x`` (activation), ``j`` bits of ``w``. Signed arrays
    weight the products of exactly one sign bit by -1 (two's complement, modified Baugh-Wooley).
    The error is bilinear in operand bits, so :meth:`factors` is exact with ``f`` in [0, 255]
    (bit fields of ``x & 0xFF``, or the constant) and ``g`` in [-128, 128] (weight bit fields).

    Args:
        spec: the spec string (families pass theirs).
        keep: bool (8, 8), row = bit i of ``x``, column = bit j of ``w``.
        signed: int8 x int8 two's complement, else uint8 x uint8.
        constant: added to every product (constant compensation).
        power: published power; the partial-product proxy of the kept fraction when None.
    """

    def __init__(self, spec: str, keep: np.ndarray, signed: bool, constant: int = 0,
                 power: Power | None = None) -> None:
        self.spec = spec
        self.keep = np.asarray(keep, dtype=bool)
        self.keep.setflags(write=False)
        self.signed = signed
        self.constant = int(constant)
        self.x_domain = self.w_domain = INT8 if signed else UINT8
        self.power = power if power is not None else partial_product_proxy(self.kept_fraction)

    @property
    def kept_partial_products(self) -> int:
        """Number of the 64 partial products the array keeps."""
        return int(self.keep.sum())

    @property
    def kept_fraction(self) -> float:
        """Fraction of the 64 partial products kept (the power proxy's input)."""
        return self.kept_partial_products / 64

    def _eval(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        # row i's kept weight bits, summed with their signs, for every weight byte: (8, 256)
        signed_keep = np.where(self.keep, product_signs(self.signed), 0) << np.arange(8)
        w_bits = (np.arange(256)[None, :] >> np.arange(8)[:, None]) & 1
        row_value = signed_keep @ w_bits
        x8, w8 = x & 0xFF, w & 0xFF
        out = np.full(np.broadcast(x, w).shape, self.constant, dtype=np.int64)
        for i in range(8):
            out += (((x8 >> i) & 1) << i) * row_value[i][w8]
        return out

    def factors(self) -> ErrorFactors:
        """Exact factors of the error: f in [0, 255], g in [-128, 128] (see class docstring)."""
        xs, ws = self.x_domain.values(), self.w_domain.values()
        extra = _constant_terms(self.constant, xs.size, ws.size) if self.constant else []
        return bilinear_factors(weights_of(self.keep, self.signed), xs, ws, extra)


def _constant_terms(c: int, n_x: int, n_w: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """A constant ``c`` (|c| < 2^15) everywhere: ``f = q, g = +-2^s`` plus a remainder term.

    Keeps ``f`` in [0, 255] and ``g`` in [-128, 128].
    """
    mag, sign = abs(c), (1 if c >= 0 else -1)
    shift = max(0, mag.bit_length() - 8)
    q, r = mag >> shift, mag - ((mag >> shift) << shift)
    terms = [(np.full(n_x, q, np.int64), np.full(n_w, sign << shift, np.int64))]
    if r:
        terms.append((np.full(n_x, r, np.int64), np.full(n_w, sign, np.int64)))
    return terms
