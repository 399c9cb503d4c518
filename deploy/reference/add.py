"""Residual add of two uint8 tensors with integer rescaling (int64 inside)."""
from __future__ import annotations

import numpy as np


def add(a: np.ndarray, b: np.ndarray, mult_a: int, mult_b: int, shift: int) -> np.ndarray:
    """``clip((a*mult_a + b*mult_b + 2^(shift-1)) >> shift, 0, 255)`` as uint8."""
    s = (np.asarray(a, np.int64) * mult_a + np.asarray(b, np.int64) * mult_b
         + (1 << (shift - 1))) >> shift
    return np.clip(s, 0, 255).astype(np.uint8)
