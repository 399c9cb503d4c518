"""Conv and linear layers with block-wise multipliers, on top of the one-multiplier kernels.

The layer runs once per distinct multiplier ``m_k`` with the weights of the other blocks set to
0 and the runs are summed. A masked tap then contributes ``m_k(x, 0)``, which is 0 for most
circuits but not for all (several EvoApprox circuits): the correction subtracts, per output,
the sum of ``m_k(x, 0)`` over the taps masked in run ``k`` (a window sum of ``m_k(x, 0)`` per
input channel, weighted by the mask). The cost grows with the number of distinct multipliers,
not of blocks.
"""
from __future__ import annotations

import numpy as np

import hwlib
from deploy.reference.conv import conv2d, pad_zero_point
from deploy.reference.linear import linear
from hwlib import Multiplier
from hwlib.blocks import Blocks, block_index, zero_weight_column


def zero_weight_products(mul: Multiplier, x: np.ndarray) -> np.ndarray:
    """``mul(x, 0)`` elementwise (int64), the product a masked weight leaves behind."""
    return zero_weight_column(mul)[np.asarray(x, np.int64) - mul.x_domain.lo]


def conv2d_blocks(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, blocks: Blocks,
                  stride: tuple[int, int], padding: tuple[int, int, int, int], groups: int,
                  zp: int) -> np.ndarray:
    """int64 accumulators of :func:`~deploy.reference.conv.conv2d` where each (output, input)
    channel pair of ``weight`` uses its block's multiplier."""
    cout, cin_g, kh, kw = weight.shape
    specs, index = block_index(blocks, cout, cin_g)
    xp = pad_zero_point(np.asarray(x, np.int64), padding, zp)
    n, _, hp, wp = xp.shape
    sy, sx = stride
    ho, wo = (hp - kh) // sy + 1, (wp - kw) // sx + 1
    acc = np.zeros((n, cout, ho, wo), np.int64)
    zeros = np.zeros(cout, np.int64)
    cout_g = cout // groups
    for k, spec in enumerate(specs):
        mul, keep = hwlib.get(spec), index == k
        acc += conv2d(x, np.where(keep[:, :, None, None], weight, 0), zeros, mul, stride,
                      padding, groups, zp)
        if keep.all():
            continue
        f = zero_weight_products(mul, xp)
        win = np.zeros((n, f.shape[1], ho, wo), np.int64)  # window sums per input channel
        for ky in range(kh):
            for kx in range(kw):
                win += f[:, :, ky:ky + sy * (ho - 1) + 1:sy, kx:kx + sx * (wo - 1) + 1:sx]
        for g in range(groups):
            rows = slice(g * cout_g, (g + 1) * cout_g)
            masked = (~keep[rows]).astype(np.int64)  # (cout_g, cin_g)
            acc[:, rows] -= np.einsum("oc,nchw->nohw", masked,
                                      win[:, g * cin_g:(g + 1) * cin_g])
    return acc + np.asarray(bias, np.int64)[None, :, None, None]


def linear_blocks(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
                  blocks: Blocks) -> np.ndarray:
    """int64 accumulators of :func:`~deploy.reference.linear.linear` where each (output,
    input) pair of ``weight`` uses its block's multiplier."""
    specs, index = block_index(blocks, *weight.shape)
    acc = np.zeros((x.shape[0], weight.shape[0]), np.int64)
    zeros = np.zeros(weight.shape[0], np.int64)
    for k, spec in enumerate(specs):
        mul, keep = hwlib.get(spec), index == k
        acc += linear(x, np.where(keep, weight, 0), zeros, mul)
        if not keep.all():
            acc -= zero_weight_products(mul, x) @ (~keep).astype(np.int64).T
    return acc + np.asarray(bias, np.int64)[None, :]
