"""Block-wise multipliers: the masked runs (torch engine and NumPy reference) against brute force.

Brute force looks every product up in its block's table, channel pair by channel pair; the fast
paths run once per distinct multiplier with the other blocks' weights masked to 0 and correct
for circuits where m(x, 0) != 0 (the ``blocktest`` tables here; MARLIN, ROUP and EvoApprox
otherwise).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hwlib
from agn.sim.blocks import blocked_conv2d, blocked_linear
from deploy.reference.blocks import conv2d_blocks, linear_blocks
from hwlib.blocks import Block, block_index

FAMILY = "blocktest"  # registered by tests/agn/conftest.py
UNSIGNED = ["exact", "marlin:3", "marlin:200", f"{FAMILY}:1", f"{FAMILY}:2"]
SIGNED = ["roup:r2p1", "evo:mul8s_1KV8", "marlin:77", f"{FAMILY}:3"]  # x in 0..127


def _brute_conv(x, w, specs, index, stride, padding, groups, zp):
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2),
                constant_values=zp)
    n, _, hp, wp = xp.shape
    cout, cin_g, kh, kw = w.shape
    ho, wo = (hp - kh) // stride[0] + 1, (wp - kw) // stride[1] + 1
    out = np.zeros((n, cout, ho, wo), np.int64)
    cout_g = cout // groups
    for co in range(cout):
        g = co // cout_g
        for ci in range(cin_g):
            m = hwlib.get(specs[index[co, ci]])
            t = m.table()
            for ky in range(kh):
                for kx in range(kw):
                    taps = xp[:, g * cin_g + ci, ky:ky + stride[0] * (ho - 1) + 1:stride[0],
                              kx:kx + stride[1] * (wo - 1) + 1:stride[1]]
                    out[:, co] += t[taps - m.x_domain.lo, int(w[co, ci, ky, kx]) - m.w_domain.lo]
    return out


def _random_blocks(rng, cout, cin, pool, kernel_level):
    go = int(rng.choice([d for d in range(1, cout + 1) if cout % d == 0]))
    gi = int(rng.choice([d for d in range(1, cin + 1) if cin % d == 0])) if kernel_level else cin
    mix = list(rng.choice(pool, size=min(len(pool), int(rng.integers(1, 4))), replace=False))
    return tuple(Block(out=(o, o + go), inp=(i, i + gi) if kernel_level else None,
                       multiplier=str(rng.choice(mix)))
                 for o in range(0, cout, go) for i in range(0, cin, gi))


@pytest.mark.parametrize("seed", range(10))
def test_conv_blocks_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    signed = seed % 2 == 1
    pool = SIGNED if signed else UNSIGNED
    groups = int(rng.choice([1, 1, 2]))
    cin_g, cout = int(rng.integers(1, 5)), groups * int(rng.integers(1, 4))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    h, w_ = kh + int(rng.integers(0, 4)), kw + int(rng.integers(0, 4))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    pad = (int(rng.integers(0, 2)), int(rng.integers(0, 2)))
    hi = 127 if signed else 255
    zp = int(rng.integers(0, hi + 1))
    x = rng.integers(0, hi + 1, (2, cin_g * groups, h, w_))
    w = rng.integers(-128, 128, (cout, cin_g, kh, kw))
    blocks = _random_blocks(rng, cout, cin_g, pool, kernel_level=seed % 3 != 0)
    specs, index = block_index(blocks, cout, cin_g)
    want = _brute_conv(x, w, specs, index, stride, pad, groups, zp)
    got = blocked_conv2d(torch.tensor(x), torch.tensor(w, dtype=torch.int8), blocks, stride,
                         pad, groups, zp)
    np.testing.assert_array_equal(got.numpy(), want)
    bias = rng.integers(-1000, 1000, cout)
    ref = conv2d_blocks(x.astype(np.uint8), w.astype(np.int8), bias, blocks, stride,
                        (pad[0], pad[0], pad[1], pad[1]), groups, zp)
    np.testing.assert_array_equal(ref, want + bias[None, :, None, None])


@pytest.mark.parametrize("seed", range(6))
def test_linear_blocks_match_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    pool = SIGNED if seed % 2 else UNSIGNED
    k, cout = int(rng.integers(1, 13)), int(rng.integers(1, 9))
    x = rng.integers(0, 128 if seed % 2 else 256, (3, k))
    w = rng.integers(-128, 128, (cout, k))
    blocks = _random_blocks(rng, cout, k, pool, kernel_level=seed % 3 != 0)
    specs, index = block_index(blocks, cout, k)
    want = _brute_conv(x[:, :, None, None], w[:, :, None, None], specs, index, (1, 1), (0, 0),
                       1, 0)[:, :, 0, 0]
    np.testing.assert_array_equal(blocked_linear(torch.tensor(x), torch.tensor(w), blocks)
                                  .numpy(), want)
    np.testing.assert_array_equal(linear_blocks(x, w, np.zeros(cout, np.int64), blocks), want)


def test_one_block_per_multiplier_equals_the_layer_wise_engine():
    from agn.sim import approx_conv2d

    rng = np.random.default_rng(7)
    x = torch.tensor(rng.integers(0, 256, (2, 3, 6, 6)))
    w = torch.tensor(rng.integers(-128, 128, (4, 3, 3, 3)), dtype=torch.int8)
    spec = f"{FAMILY}:4"
    blocks = (Block(out=(0, 2), inp=(0, 3), multiplier=spec),
              Block(out=(2, 4), inp=(0, 3), multiplier=spec))
    assert torch.equal(blocked_conv2d(x, w, blocks, 1, 1, 1, 9),
                       approx_conv2d(x, w, spec, 1, 1, 1, 9).to(torch.int64))
