"""The brute-force reference against hand-computed sums and MARLIN's published test vectors."""
from __future__ import annotations

import numpy as np
import torch

import hwlib
from agn.sim import approx_linear, reference_conv2d, reference_linear


def test_marlin_vectors_through_linear():
    # (x, y, L) -> approx from docs/marlin.md, one product per accumulator
    cases = [(100, 100, 15, 10012), (1, 1, 255, 252), (17, -1, 4, -17)]
    for x, w, level, want in cases:
        got = reference_linear(torch.tensor([[x]]), torch.tensor([[w]]), f"marlin:{level}")
        assert int(got) == want
        fast = approx_linear(torch.tensor([[x]]), torch.tensor([[w]]), f"marlin:{level}")
        assert int(fast) == want


def test_reference_conv_matches_loops_with_padding_groups_stride():
    m = hwlib.get("marlin:77")
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (2, 4, 5, 6))
    w = rng.integers(-128, 128, (6, 2, 3, 2))
    zp, (sy, sx), (py, px), groups = 9, (2, 1), (1, 2), 2
    xp = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)), constant_values=zp)
    ho, wo = (xp.shape[2] - 3) // sy + 1, (xp.shape[3] - 2) // sx + 1
    want = np.zeros((2, 6, ho, wo), np.int64)
    for n in range(2):
        for co in range(6):
            g = co // 3
            for oy in range(ho):
                for ox in range(wo):
                    for ci in range(2):
                        for ky in range(3):
                            for kx in range(2):
                                xv = xp[n, g * 2 + ci, oy * sy + ky, ox * sx + kx]
                                want[n, co, oy, ox] += m(xv, w[co, ci, ky, kx])
    got = reference_conv2d(torch.from_numpy(x), torch.from_numpy(w), m, stride=(sy, sx),
                           padding=(py, px), groups=groups, zero_point=zp)
    assert got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), want)
