"""DRUM(k), the dynamic-range unbiased multiplier on uint8 x uint8: ``drum:k6``."""
from __future__ import annotations

import numpy as np

from hwlib.domain import UINT8
from hwlib.multiplier import Multiplier
from hwlib.power import partial_product_proxy
from hwlib.registry import check_range, parse_arg
from hwlib.signmag import network_form

PATTERN, EXAMPLE = r"k(\d+)", "k6"


def leading_one(v: np.ndarray) -> np.ndarray:
    """Position of the leading one of each non-negative value (-1 for 0), int64."""
    v = np.asarray(v, dtype=np.int64)
    out = np.full(v.shape, -1, dtype=np.int64)
    for t in range(int(v.max(initial=0)).bit_length()):
        out = np.where(v >> t, t, out)
    return out


def drum_operand(v: np.ndarray, k: int) -> np.ndarray:
    """D_k(v): keep the k-bit segment from the leading one, force its LSB to 1 (exact below 2^k)."""
    p = np.maximum(leading_one(v) - k + 1, 0)
    return np.where(v < (1 << k), v, ((v >> p) | 1) << p)


class Drum(Multiplier):
    """DRUM(k): ``D_k(A) * D_k(B)``; power is the partial-product proxy of its k x k core.

    Args:
        k: segment width, 1..8 (8 is exact).
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.spec = f"drum:k{k}:raw"
        self.x_domain = self.w_domain = UINT8
        self.power = partial_product_proxy(min(k * k / 64, 1.0))

    def _eval(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return drum_operand(x, self.k) * drum_operand(w, self.k)


def make(arg: str) -> Multiplier:
    """Factory for ``drum:k{k}`` (network form; the circuit is ``.circuit``)."""
    (k_s,) = parse_arg("drum", arg, PATTERN, EXAMPLE)
    return network_form(Drum(check_range(f"drum:{arg}", "k", int(k_s), 1, 8)))


def grid() -> list[str]:
    """Arguments ``drum:*`` expands to: k 3..7."""
    return [f"k{k}" for k in range(3, 8)]
