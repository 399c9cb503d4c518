"""Bit-exact conv2d / linear with block-wise multipliers, on top of :func:`approx_conv2d`.

A layer whose (output, input) channel pairs use different multipliers (:mod:`hwlib.blocks`) runs
once per distinct multiplier: on the output channels that multiplier touches, with the weights of
the other blocks set to 0. A masked tap then contributes ``m(x, 0)``, which some circuits do not
make 0 (several EvoApprox circuits); the correction subtracts it, as a float64 convolution of
``m(xpad, 0)`` with the mask (exact: integers far below 2^53). Output-channel groups of an
ungrouped layer need no mask at all, so the cost is one layer's work whatever the number of
groups; kernel blocks cost one run per distinct multiplier.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from agn.sim.engine import approx_conv2d
from agn.sim.operands import linear_as_conv, pair, resolve
from hwlib.blocks import Blocks, block_index, zero_weight_column

__all__ = ["blocked_conv2d", "blocked_linear"]


def blocked_conv2d(x: torch.Tensor, w: torch.Tensor, blocks: Blocks,
                   stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                   groups: int = 1, zero_point: int = 0) -> torch.Tensor:
    """Exact ``sum_taps m_b(xpad, w)`` (no bias) where each weight's (output, input) channel pair
    uses its block's multiplier ``m_b``; int64 (N, Cout, Ho, Wo).

    Same operands and errors as :func:`agn.sim.approx_conv2d` (x must lie in every block
    multiplier's activation domain); ``blocks`` index axes 0 and 1 of ``w``.
    """
    cout, cin_g = int(w.shape[0]), int(w.shape[1])
    specs, index = block_index(blocks, cout, cin_g)
    idx = torch.from_numpy(index)
    acc: torch.Tensor | None = None
    for k, spec in enumerate(specs):
        keep = idx == k
        rows = keep.any(dim=1).nonzero().flatten() if groups == 1 else torch.arange(cout)
        keep_k, w_k = keep[rows], w[rows]
        masked = not bool(keep_k.all())
        if masked:
            w_k = torch.where(keep_k[:, :, None, None], w_k, torch.zeros((), dtype=w.dtype))
        part = approx_conv2d(x, w_k, spec, stride, padding, groups, zero_point).to(torch.int64)
        if masked:
            part -= _masked_taps(x, ~keep_k, spec, tuple(w.shape[2:]), stride, padding, groups,
                                 zero_point)
        if acc is None:
            acc = torch.zeros((part.shape[0], cout, *part.shape[2:]), dtype=torch.int64)
        acc[:, rows] += part
    assert acc is not None
    return acc


def blocked_linear(x: torch.Tensor, w: torch.Tensor, blocks: Blocks) -> torch.Tensor:
    """Exact ``sum_k m_b(x[n, k], w[co, k])`` with block-wise multipliers; int64 (N, Cout)."""
    x4, w4 = linear_as_conv(x, w)
    return blocked_conv2d(x4, w4, blocks)[:, :, 0, 0]


def _masked_taps(x: torch.Tensor, masked: torch.Tensor, spec: str, kernel: tuple[int, ...],
                 stride: int | tuple[int, int], padding: int | tuple[int, int], groups: int,
                 zero_point: int) -> torch.Tensor:
    """``sum over the masked taps of m(xpad, 0)`` per output (int64), 0 when m(x, 0) is."""
    m = resolve(spec)
    column = zero_weight_column(m)
    lo = m.network_x_domain().lo - m.x_domain.lo
    hi = m.network_x_domain().hi - m.x_domain.lo + 1
    if not column[lo:hi].any():
        return torch.zeros((), dtype=torch.int64)
    py, px = pair(padding, "padding", 0)
    xp = F.pad(x.to(torch.int64), (px, px, py, py), value=zero_point)
    f = torch.from_numpy(column.astype(np.float64))[xp - m.x_domain.lo]
    ones = masked.to(torch.float64)[:, :, None, None].expand(-1, -1, *kernel).contiguous()
    return torch.round(F.conv2d(f, ones, stride=pair(stride, "stride", 1),
                                groups=groups)).to(torch.int64)
