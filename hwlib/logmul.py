"""Logarithm-based unsigned multipliers: Mitchell (``mitchell:8``) and RoBA (``roba:8``)."""
from __future__ import annotations

import numpy as np

from hwlib.domain import UINT8
from hwlib.drum import leading_one
from hwlib.multiplier import ErrorFactors, Multiplier
from hwlib.power import UNKNOWN_POWER
from hwlib.registry import parse_arg
from hwlib.signmag import network_form


def nearest_power_of_two(v: np.ndarray) -> np.ndarray:
    """``v`` rounded to the nearest power of two, ties (3 * 2^(t-1)) up; 0 stays 0."""
    t = leading_one(v)
    low = np.where(v > 0, np.left_shift(1, np.maximum(t, 0)), 0)
    return np.where(2 * (v - low) >= low, 2 * low, low)


class Mitchell(Multiplier):
    """Mitchell's logarithmic multiplier (docs/multipliers.md), 8-bit unsigned.

    ``A = 2^k1 + f1``, ``B = 2^k2 + f2``, ``s = f1 2^k2 + f2 2^k1``:
    ``2^(k1+k2) + s`` if ``s < 2^(k1+k2)`` else ``2 s``; 0 if either operand is 0.
    """

    spec = "mitchell:8:raw"
    x_domain = w_domain = UINT8
    power = UNKNOWN_POWER  # no partial-product array, so no proxy either

    def _eval(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        k1, k2 = np.maximum(leading_one(x), 0), np.maximum(leading_one(w), 0)
        s = (x - (1 << k1)) * (1 << k2) + (w - (1 << k2)) * (1 << k1)
        base = np.left_shift(1, k1 + k2)
        return np.where((x == 0) | (w == 0), 0, np.where(s < base, base + s, 2 * s))


class Roba(Multiplier):
    """RoBA, the rounding-based approximate multiplier, 8-bit unsigned.

    ``Ar B + A Br - Ar Br`` with ``Ar``, ``Br`` the operands rounded to the nearest power of two
    (ties up, see :func:`nearest_power_of_two`).
    """

    spec = "roba:8:raw"
    x_domain = w_domain = UINT8
    power = UNKNOWN_POWER  # no partial-product array, so no proxy either

    def _eval(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        xr, wr = nearest_power_of_two(x), nearest_power_of_two(w)
        return xr * w + x * wr - xr * wr

    def factors(self) -> ErrorFactors:
        """Rank 1: ``e = (x - xr) * (wr - w)``; f in [-64, 63], g in [-63, 64] (0 at powers of 2).
        """
        xs, ws = self.x_domain.values(), self.w_domain.values()
        return ErrorFactors((xs - nearest_power_of_two(xs))[None, :],
                            (nearest_power_of_two(ws) - ws)[None, :])


def make_mitchell(arg: str) -> Multiplier:
    """Factory for ``mitchell:8`` (network form; only the 8-bit circuit exists)."""
    parse_arg("mitchell", arg, r"8", "8")
    return network_form(Mitchell())


def make_roba(arg: str) -> Multiplier:
    """Factory for ``roba:8`` (network form; only the 8-bit circuit exists)."""
    parse_arg("roba", arg, r"8", "8")
    return network_form(Roba())
