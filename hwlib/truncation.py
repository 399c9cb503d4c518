"""Column truncation of an unsigned 8x8 array, optionally compensated (``trunc:k4``,
``trunc:k4c``)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from hwlib.multiplier import Multiplier
from hwlib.pparray import PartialProductArray
from hwlib.registry import check_range, parse_arg
from hwlib.signmag import network_form

PATTERN, EXAMPLE = r"k(\d+)(c?)", "k4"


def compensation(k: int) -> int:
    """round(E[dropped]) = round(sum over dropped (i, j) of 2^(i+j) / 4) for uniform bits.

    The sum is always n + 1/4, so the rounding has no ties.
    """
    i, j = np.indices((8, 8))
    return round(Fraction(int(np.sum(np.where(i + j < k, 1 << (i + j), 0))), 4))


class ColumnTruncation(PartialProductArray):
    """Unsigned uint8 x uint8 array keeping partial products with ``i + j >= k``.

    Args:
        k: dropped columns, 0..15.
        compensated: add :func:`compensation` (k) to every product.
    """

    def __init__(self, k: int, compensated: bool = False) -> None:
        self.k, self.compensated = k, compensated
        i, j = np.indices((8, 8))
        spec = f"trunc:k{k}{'c' if compensated else ''}:raw"
        super().__init__(spec, i + j >= k, signed=False,
                         constant=compensation(k) if compensated else 0)


def make(arg: str) -> Multiplier:
    """Factory for ``trunc:k{k}[c]`` (network form; the circuit is ``.circuit``)."""
    k_s, c = parse_arg("trunc", arg, PATTERN, EXAMPLE)
    k = check_range(f"trunc:{arg}", "k", int(k_s), 0, 15)
    return network_form(ColumnTruncation(k, compensated=bool(c)))


def grid() -> list[str]:
    """Arguments ``trunc:*`` expands to: k 1..8, plain and compensated."""
    return [f"k{k}{c}" for k in range(1, 9) for c in ("", "c")]
