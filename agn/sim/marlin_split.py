"""A shorter uint8 x int8 split of MARLIN levels 128..255 (9 terms instead of 10, 8 at 255).

With ``m_i = L >> i``, weight bits ``b_i`` and ``C = L & 0xFC``, for L >= 128 (so ``m_7 = 1``):

    m(x, w) = sum_{i<7} (x & ~m_i) * 2^i b_i(w)                     exact and error bits 0..6
            + (x + (x & 1) - [x != 0]) * (-128 b_7(w))              exact and error bit 7
            + 4 [x != 0] * (C [w != 0] - 128 b_7(w)) / 4            compensation and the rest

Every feature lies in 0..255 and every weight feature in int8; the caller verifies the split
against the table before using it.
"""
from __future__ import annotations

import numpy as np

from agn.sim.factors import U8S8Terms
from hwlib.marlin import Marlin, compensation


def marlin_u8s8(m: Marlin) -> U8S8Terms | None:
    """The split above for a MARLIN level >= 128 over uint8 x int8, else None."""
    xs, ws = m.network_x_domain().values(), m.w_domain.values()
    if m.level < 128 or xs[0] != 0 or xs[-1] > 255 or ws[0] < -128 or ws[-1] > 127:
        return None
    w8, nz_x = ws & 0xFF, (xs != 0).astype(np.int64)
    bit = [(w8 >> i) & 1 for i in range(8)]
    f, g = [], []
    for i in range(7):
        feature = xs & (~(m.level >> i) & 0xFF)
        if feature.any():
            f.append(feature)
            g.append(bit[i] << i)
    f.append(xs + (xs & 1) - nz_x)
    g.append(-128 * bit[7])
    f.append(4 * nz_x)
    g.append((compensation(m.level) * (ws != 0) - 128 * bit[7]) // 4)
    return U8S8Terms(np.array(f, np.int64), np.array(g, np.int64), np.zeros(len(f), np.int64))
