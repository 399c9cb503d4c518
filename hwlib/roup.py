"""ROUP(R, P): radix-4 Booth, operand rounding and perforation: ``roup:r4p1``, ``roup:r4p1u``."""
from __future__ import annotations

import numpy as np

from hwlib.domain import INT8, UINT8
from hwlib.multiplier import ErrorFactors, Multiplier
from hwlib.power import partial_product_proxy
from hwlib.registry import check_range, parse_arg
from hwlib.signmag import network_form

PATTERN, EXAMPLE = r"r(\d+)p(\d+)(u?)", "r4p1"


def round_half_up(v: np.ndarray, bits: int) -> np.ndarray:
    """``v`` rounded to the nearest multiple of ``2^bits``, ties up (floor shift)."""
    if bits == 0:
        return v
    return ((v + (1 << (bits - 1))) >> bits) << bits


class Roup(Multiplier):
    """Behavioural ROUP: ``round_R(A) * round_2P(B)`` (perforating P Booth digits of B).

    Power is the partial-product proxy with ``(4 - P) / 4`` of the radix-4 rows kept.

    Args:
        r: rounding bits of the first operand (activation), 0..7.
        p: perforated radix-4 digits of the second operand (weight), 0..3.
        signed: int8 x int8 (``roup:r{r}p{p}``), else uint8 x uint8 (``roup:r{r}p{p}u:raw``).
    """

    def __init__(self, r: int, p: int, signed: bool = True) -> None:
        self.r, self.p = r, p
        self.spec = f"roup:r{r}p{p}" if signed else f"roup:r{r}p{p}u:raw"
        self.x_domain = self.w_domain = INT8 if signed else UINT8
        self.power = partial_product_proxy((4 - p) / 4)

    def _eval(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return round_half_up(x, self.r) * round_half_up(w, 2 * self.p)

    def factors(self) -> ErrorFactors:
        """Rank <= 2 in the rounding residues: ``e = dx(x) * round(w) + x * dw(w)``.

        ``dx = round_R(x) - x`` lies in [-2^(R-1) + 1, 2^(R-1)] and ``dw`` likewise, so unlike the
        partial-product families ``f`` takes negative values (``x`` itself for the signed form)
        and ``round(w)`` can reach 128.
        """
        xs, ws = self.x_domain.values(), self.w_domain.values()
        dx, rw = round_half_up(xs, self.r) - xs, round_half_up(ws, 2 * self.p)
        terms = [(f, g) for f, g in ((dx, rw), (xs, rw - ws)) if f.any() and g.any()]
        return ErrorFactors(np.array([t[0] for t in terms], np.int64).reshape(-1, xs.size),
                            np.array([t[1] for t in terms], np.int64).reshape(-1, ws.size))


def make(arg: str) -> Multiplier:
    """Factory for ``roup:r{r}p{p}[u]``."""
    r_s, p_s, u = parse_arg("roup", arg, PATTERN, EXAMPLE)
    r = check_range(f"roup:{arg}", "r", int(r_s), 0, 7)
    p = check_range(f"roup:{arg}", "p", int(p_s), 0, 3)
    return network_form(Roup(r, p, signed=False)) if u else Roup(r, p)


def grid() -> list[str]:
    """Arguments ``roup:*`` expands to: signed r 0..4 x p 0..3."""
    return [f"r{r}p{p}" for p in range(4) for r in range(5)]
