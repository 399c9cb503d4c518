"""Residual add of two uint8 tensors with their zero points and integer rescaling (int64 inside)."""
from __future__ import annotations

import numpy as np


def add(a: np.ndarray, b: np.ndarray, mult_a: int, mult_b: int, shift: int, zp_a: int = 0,
        zp_b: int = 0, zp_out: int = 0, lo: int = 0, hi: int = 255) -> np.ndarray:
    """``clip((((a-zp_a)*mult_a + (b-zp_b)*mult_b + 2^(shift-1)) >> shift) + zp_out, lo, hi)``."""
    s = ((np.asarray(a, np.int64) - zp_a) * mult_a + (np.asarray(b, np.int64) - zp_b) * mult_b
         + (1 << (shift - 1))) >> shift
    return np.clip(s + zp_out, lo, hi).astype(np.uint8)
