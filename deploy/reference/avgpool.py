"""Average pooling: the int64 window sum, then the op's own per-channel requantisation."""
from __future__ import annotations

import numpy as np

from deploy.reference.requant import requantize


def window_sum(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Sums over each (unpadded) window, int64 (N, C, Ho, Wo)."""
    xi = np.asarray(x, np.int64)
    (kh, kw), (sy, sx) = kernel, stride
    ho, wo = (xi.shape[2] - kh) // sy + 1, (xi.shape[3] - kw) // sx + 1
    out = np.zeros(xi.shape[:2] + (ho, wo), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            out += xi[:, :, ky:ky + sy * (ho - 1) + 1:sy, kx:kx + sx * (wo - 1) + 1:sx]
    return out


def avgpool(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], mult: np.ndarray,
            shift: np.ndarray, zp_out: int, lo: int, hi: int) -> np.ndarray:
    """Requantised window sums (N, C, Ho, Wo), uint8; global pooling is ``kernel = (H, W)``."""
    return requantize(window_sum(x, kernel, stride), mult, shift, zp_out, lo, hi)
