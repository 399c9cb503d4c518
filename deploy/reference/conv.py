"""Convolution with any multiplier: padding with the input zero point, products by table gather."""
from __future__ import annotations

import numpy as np

from hwlib import Multiplier


def pad_zero_point(x: np.ndarray, padding: tuple[int, int, int, int], zp: int) -> np.ndarray:
    """Pad the H and W axes of ``x`` (N, C, H, W) by (top, bottom, left, right) with ``zp``."""
    t, b, l, r = padding
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=zp)


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, mul: Multiplier,
           stride: tuple[int, int], padding: tuple[int, int, int, int], groups: int,
           zp: int) -> np.ndarray:
    """int64 accumulators ``bias[co] + sum m(xpad, w)`` (N, Cout, Ho, Wo).

    Args:
        x: uint8 activations (N, Cin, H, W) inside ``mul``'s activation domain.
        weight: int8 (Cout, Cin/groups, Kh, Kw).
        bias: int32 (Cout,).
        mul: the layer's multiplier; ``mul.table()`` gives every product.
        stride: (sy, sx).
        padding: (top, bottom, left, right), filled with ``zp``.
        groups: channel groups.
        zp: the input zero point.
    """
    xp = pad_zero_point(np.asarray(x, np.int64), padding, zp) - mul.x_domain.lo
    table = mul.table()
    n, _, hp, wp = xp.shape
    cout, cin_g, kh, kw = weight.shape
    sy, sx = stride
    ho, wo = (hp - kh) // sy + 1, (wp - kw) // sx + 1
    wi = np.asarray(weight, np.int64) - mul.w_domain.lo
    cout_g = cout // groups
    acc = np.empty((n, cout, ho, wo), np.int64)
    for g in range(groups):
        xg = xp[:, g * cin_g:(g + 1) * cin_g]
        wg = wi[g * cout_g:(g + 1) * cout_g]
        part = np.zeros((n, cout_g, ho, wo), np.int64)
        for ci in range(cin_g):
            for ky in range(kh):
                for kx in range(kw):
                    taps = xg[:, ci, ky:ky + sy * (ho - 1) + 1:sy, kx:kx + sx * (wo - 1) + 1:sx]
                    part += table[taps[:, None], wg[None, :, ci, ky, kx, None, None]]
        acc[:, g * cout_g:(g + 1) * cout_g] = part
    return acc + np.asarray(bias, np.int64)[None, :, None, None]
