"""The mode of an approximable layer: float, fake-quant, learned noise, or approximate products."""
from __future__ import annotations

import enum


class Mode(enum.IntEnum):
    """What an approximable layer computes (stored as an integer buffer, so checkpoints carry it).

    FLOAT: the plain torch layer. QUANT: fake-quantized uint8 x int8 product (int32 semantics).
    NOISE: QUANT plus ``eps * |sigma| * std(y)`` on the output before the bias, in training only.
    APPROX: every product through the layer's hwlib multiplier (bit-exact engine ``agn.sim``),
    straight-through gradients of the QUANT product.
    """

    FLOAT = 0
    QUANT = 1
    NOISE = 2
    APPROX = 3

    @classmethod
    def parse(cls, value: Mode | str | int) -> Mode:
        """A Mode from a Mode, its name (any case) or its integer value."""
        if isinstance(value, Mode):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        if isinstance(value, int) and not isinstance(value, bool) and value in set(cls):
            return cls(value)
        raise ValueError(f"layer mode: expected one of {[m.name.lower() for m in cls]}, "
                         f"got {value!r}")
