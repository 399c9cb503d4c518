"""Max pooling over uint8 activations; padded positions never win."""
from __future__ import annotations

import numpy as np


def maxpool(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
            padding: tuple[int, int, int, int]) -> np.ndarray:
    """Window maxima (N, C, Ho, Wo), uint8; padding (below the kernel size) is filled with 0."""
    t, b, l, r = padding
    xp = np.pad(np.asarray(x, np.uint8), ((0, 0), (0, 0), (t, b), (l, r)))
    (kh, kw), (sy, sx) = kernel, stride
    ho, wo = (xp.shape[2] - kh) // sy + 1, (xp.shape[3] - kw) // sx + 1
    out = np.zeros(xp.shape[:2] + (ho, wo), np.uint8)
    for ky in range(kh):
        for kx in range(kw):
            np.maximum(out, xp[:, :, ky:ky + sy * (ho - 1) + 1:sy, kx:kx + sx * (wo - 1) + 1:sx],
                       out=out)
    return out
