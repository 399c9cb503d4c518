"""Per-channel requantisation, as ``docs/integer_semantics.md`` defines it (int64 inside)."""
from __future__ import annotations

import numpy as np


def requantize(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray, zp_out: int, lo: int,
               hi: int) -> np.ndarray:
    """``clip(((acc * mult[c] + 2^(shift[c]-1)) >> shift[c]) + zp_out, lo, hi)`` as uint8.

    Args:
        acc: integer accumulators (N, C, ...) with |acc| < 2^31.
        mult: int (C,), each in [1, 2^31).
        shift: int (C,), each in [1, 62].
        zp_out, lo, hi: output zero point and clip bounds (0..255).
    """
    a = np.asarray(acc, dtype=np.int64)
    bshape = (1, -1) + (1,) * (a.ndim - 2)
    m = np.asarray(mult, dtype=np.int64).reshape(bshape)
    s = np.asarray(shift, dtype=np.int64).reshape(bshape)
    out = ((a * m + (np.int64(1) << (s - 1))) >> s) + zp_out
    return np.clip(out, lo, hi).astype(np.uint8)
