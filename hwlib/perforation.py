"""Partial-product perforation of an unsigned 8x8 multiplier: ``perf:m2s0``."""
from __future__ import annotations

import numpy as np

from hwlib.multiplier import Multiplier
from hwlib.pparray import PartialProductArray
from hwlib.registry import check_range, parse_arg
from hwlib.signmag import network_form

PATTERN, EXAMPLE = r"m(\d+)s(\d+)", "m2s0"


class Perforation(PartialProductArray):
    """Perforation(m, s): skip m partial-product rows from row s: ``A * (B - bits s..s+m-1 of B)``.

    Rows are bits of the second operand (the weight). uint8 x uint8.

    Args:
        m: skipped rows, 1..8 - s.
        s: first skipped row, 0..7.
    """

    def __init__(self, m: int, s: int) -> None:
        self.m, self.s = m, s
        self.mask = ((1 << m) - 1) << s
        _, j = np.indices((8, 8))
        super().__init__(f"perf:m{m}s{s}:raw", ((self.mask >> j) & 1) == 0, signed=False)

    def _eval(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x * (w - (w & self.mask))


def make(arg: str) -> Multiplier:
    """Factory for ``perf:m{m}s{s}`` (network form; the circuit is ``.circuit``)."""
    m_s, s_s = parse_arg("perf", arg, PATTERN, EXAMPLE)
    s = check_range(f"perf:{arg}", "s", int(s_s), 0, 7)
    m = check_range(f"perf:{arg}", "m", int(m_s), 1, 8 - s)
    return network_form(Perforation(m, s))


def grid() -> list[str]:
    """Arguments ``perf:*`` expands to: s 0..3 x m 1..4."""
    return [f"m{m}s{s}" for s in range(4) for m in range(1, 5)]
