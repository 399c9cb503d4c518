"""Operand-truncation multipliers TM(k): ``tm:k3`` (signed int8) and ``tm:k3u`` (unsigned)."""
from __future__ import annotations

import numpy as np

from hwlib.multiplier import Multiplier
from hwlib.power import Power
from hwlib.pparray import PartialProductArray
from hwlib.registry import check_range, parse_arg
from hwlib.signmag import network_form

PATTERN, EXAMPLE = r"k(\d+)(u?)", "k3"


class OperandTruncation(PartialProductArray):
    """TM(k): ``floor(A / 2^k) 2^k * floor(B / 2^k) 2^k`` (the k LSBs of both operands cleared).

    Equivalently the array keeping partial products with ``i >= k`` and ``j >= k``, which gives
    the exact bilinear factors of :class:`PartialProductArray`.

    Args:
        k: truncated bits per operand, 0..8.
        signed: int8 x int8 (spec ``tm:k{k}``), else uint8 x uint8 (``tm:k{k}u:raw``).
        power: published power; the partial-product proxy when None.
        spec: spec override (EvoApprox aliases).
    """

    def __init__(self, k: int, signed: bool = True, power: Power | None = None,
                 spec: str | None = None) -> None:
        self.k = k
        i, j = np.indices((8, 8))
        default = f"tm:k{k}" if signed else f"tm:k{k}u:raw"
        super().__init__(spec or default, (i >= k) & (j >= k), signed, power=power)

    def _eval(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return ((x >> self.k) << self.k) * ((w >> self.k) << self.k)


def make(arg: str) -> Multiplier:
    """Factory for ``tm:k{k}[u]``; signed specs matching an EvoApprox circuit get its power."""
    k_s, u = parse_arg("tm", arg, PATTERN, EXAMPLE)
    k = check_range(f"tm:{arg}", "k", int(k_s), 0, 8)
    if u:
        return network_form(OperandTruncation(k, signed=False))
    from hwlib.evoapprox import ClosedForm, published_power_of

    return OperandTruncation(k, power=published_power_of(ClosedForm("tm", k)))


def grid() -> list[str]:
    """Arguments ``tm:*`` expands to: signed k 1..6."""
    return [f"k{k}" for k in range(1, 7)]
