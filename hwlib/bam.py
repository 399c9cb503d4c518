"""Broken-array multipliers BAM(v, h): ``bam:v5h2`` (signed int8) and ``bam:v5h2u`` (unsigned)."""
from __future__ import annotations

import numpy as np

from hwlib.multiplier import Multiplier
from hwlib.power import Power
from hwlib.pparray import PartialProductArray
from hwlib.registry import check_range, parse_arg
from hwlib.signmag import network_form

PATTERN, EXAMPLE = r"v(\d+)h(\d+)(u?)", "v5h2"


def keep_mask(v: int, h: int) -> np.ndarray:
    """Partial products BAM keeps: ``i >= h`` (bit i of the first operand) and ``i + j >= v``."""
    i, j = np.indices((8, 8))
    return (i >= h) & (i + j >= v)


class Bam(PartialProductArray):
    """BAM(v, h): ``P = sum_{i >= h, i + j >= v} w_ij a_i b_j 2^(i+j)`` (docs/multipliers.md).

    Args:
        v: vertical break level, 0..15 (columns i + j < v dropped).
        h: horizontal break level, 0..8 (rows i < h of the first operand dropped).
        signed: two's-complement int8 x int8 (``w_ij = -1`` when exactly one of i, j is 7), else
            uint8 x uint8 with spec ``bam:v{v}h{h}u:raw``.
        power: published power; the partial-product proxy when None.
        spec: spec override (EvoApprox aliases).
    """

    def __init__(self, v: int, h: int, signed: bool = True, power: Power | None = None,
                 spec: str | None = None) -> None:
        self.v, self.h = v, h
        default = f"bam:v{v}h{h}" if signed else f"bam:v{v}h{h}u:raw"
        super().__init__(spec or default, keep_mask(v, h), signed, power=power)


def make(arg: str) -> Multiplier:
    """Factory for ``bam:v{v}h{h}[u]``; signed specs matching an EvoApprox circuit get its power."""
    v_s, h_s, u = parse_arg("bam", arg, PATTERN, EXAMPLE)
    spec = f"bam:{arg}"
    v, h = check_range(spec, "v", int(v_s), 0, 15), check_range(spec, "h", int(h_s), 0, 8)
    if u:
        return network_form(Bam(v, h, signed=False))
    from hwlib.evoapprox import ClosedForm, published_power_of

    return Bam(v, h, power=published_power_of(ClosedForm("bam", v, h)))


def grid() -> list[str]:
    """Arguments ``bam:*`` expands to: signed v 0..11 x h 0..6 (the computed-reference grid)."""
    return [f"v{v}h{h}" for v in range(12) for h in range(7)]
