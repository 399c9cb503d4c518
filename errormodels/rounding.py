"""Operand bits a multiplier ignores, detected from its table (for operand rounding).

A circuit that ignores the ``k`` low bits of an operand (operand truncation, broken-array rows,
perforated rows from bit 0, several EvoApprox circuits) computes the same product for every
operand value of one block ``[q * 2^k, (q + 1) * 2^k)``: it truncates. Feeding it values on the
grid it keeps, rounded instead of truncated, removes the truncation's bias at no cost.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

import hwlib

__all__ = ["IgnoredBits", "ignored_bits"]


@dataclass(frozen=True)
class IgnoredBits:
    """How many low bits of each operand a multiplier ignores.

    Attributes:
        x: low bits of the activation (first operand) that never change the product.
        w: low bits of the weight (second operand, two's complement) that never change it.
    """

    x: int = 0
    w: int = 0

    @property
    def x_offset(self) -> int:
        """Code offset that turns the circuit's truncation of activations into rounding
        (``2^(x-1)``; 0 when no bit is ignored)."""
        return (1 << (self.x - 1)) if self.x else 0

    @property
    def w_step(self) -> int:
        """Grid of the weight values the circuit keeps (``2^w``)."""
        return 1 << self.w


def _low_bits_ignored(table: np.ndarray, values: np.ndarray, axis: int) -> int:
    """Largest k (< 8) such that clearing the k low bits of the operand along ``axis`` never
    changes the table."""
    index = {int(v): i for i, v in enumerate(values)}
    best = 0
    for k in range(1, 8):
        cleared = values & ~((1 << k) - 1)
        if not all(int(c) in index for c in cleared):
            break
        rows = np.array([index[int(c)] for c in cleared])
        if not np.array_equal(np.take(table, rows, axis=axis), table):
            break
        best = k
    return best


@lru_cache(maxsize=256)
def _ignored(spec: str) -> IgnoredBits:
    m = hwlib.get(spec)
    t = m.table()
    return IgnoredBits(x=_low_bits_ignored(t, m.x_domain.values(), 0),
                       w=_low_bits_ignored(t, m.w_domain.values(), 1))


def ignored_bits(multiplier: str | hwlib.Multiplier) -> IgnoredBits:
    """The low operand bits ``multiplier`` ignores, from its full table (cached by spec)."""
    return _ignored(multiplier if isinstance(multiplier, str) else multiplier.spec)
