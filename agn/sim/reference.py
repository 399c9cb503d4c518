"""Brute-force reference: look up every product in the multiplier's table, sum in int64."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from agn.sim.operands import (
    check_zero_point,
    conv_geometry,
    integer_tensor,
    linear_as_conv,
    resolve,
)
from hwlib import Multiplier


def reference_conv2d(x: torch.Tensor, w: torch.Tensor, multiplier: Multiplier | str,
                     stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                     groups: int = 1, zero_point: int = 0) -> torch.Tensor:
    """``sum_taps m(xpad, w)`` by a table lookup per product, int64 (N, Cout, Ho, Wo).

    Same contract as :func:`agn.sim.approx_conv2d`; meant for tests, not speed.
    """
    m = resolve(multiplier)
    xd = m.network_x_domain()
    geo = conv_geometry(x, w, stride, padding, groups)
    xi = integer_tensor(x, "x", xd, m.spec).long()
    wi = integer_tensor(w, "w", m.w_domain, m.spec).long()
    zp = check_zero_point(zero_point, xd, m.spec)
    table = torch.from_numpy(m.table().copy())
    (sy, sx), (py, px), (kh, kw) = geo.stride, geo.padding, geo.kernel
    xp = F.pad(xi, (px, px, py, py), value=zp)
    cols = xp.unfold(2, kh, sy).unfold(3, kw, sx)  # (N, C, Ho, Wo, kh, kw)
    n, _, ho, wo = cols.shape[:4]
    cg, og = geo.c_in // groups, geo.c_out // groups
    out = torch.empty((n, geo.c_out, ho, wo), dtype=torch.int64)
    rows = cols - m.x_domain.lo
    for co in range(geo.c_out):
        gi = co // og
        taps = rows[:, gi * cg:(gi + 1) * cg].permute(0, 2, 3, 1, 4, 5)  # (N, Ho, Wo, Cg, kh, kw)
        products = table[taps, wi[co] - m.w_domain.lo]
        out[:, co] = products.sum(dim=(3, 4, 5))
    return out


def reference_linear(x: torch.Tensor, w: torch.Tensor,
                     multiplier: Multiplier | str) -> torch.Tensor:
    """``sum_k m(x[n, k], w[co, k])`` by a table lookup per product, int64 (N, Cout)."""
    x4, w4 = linear_as_conv(x, w)
    return reference_conv2d(x4, w4, multiplier)[:, :, 0, 0]
