"""Exactness bounds: unsafe kernels are refused, wide outputs widen, the oneDNN self-test bites."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hwlib
from agn.sim import UnsafePathError, approx_conv2d, onednn, plan, reference_conv2d
from hwlib import INT8, UINT8, Power, TableMultiplier


def test_unsafe_float32_is_refused_with_the_bound():
    m = hwlib.get("marlin:255")
    w = torch.full((2, 512, 3, 3), -128)
    with pytest.raises(UnsafePathError, match=r"float32: partial sums reach .* >= 2\^24"):
        plan(m, w, kernel="float32")
    with pytest.raises(UnsafePathError, match="float32: table sums reach"):
        plan(m, w, path="gather", kernel="float32")
    sliced = plan(m, w, kernel="onednn-u8s8")  # 4608 taps of 255 * 128: slice the channels
    assert sliced.slices == 10 and str(sliced).endswith("x10 slices")  # 52 channels each
    assert plan(m, w.clamp(-1, 1), kernel="float32").kernel == "float32"
    grouped = torch.full((4, 256, 3, 3), -128)  # slicing is for groups == 1 only
    with pytest.raises(UnsafePathError, match=r"onednn-u8s8: float32 output reaches .* >= 2\^24"):
        plan(m, grouped, groups=2, kernel="onednn-u8s8")
    with pytest.raises(UnsafePathError, match="path: expected one of"):
        plan(m, w, path="fast")


def test_int64_output_when_the_bound_leaves_int32(assert_exact):
    xs, ws = UINT8.values()[:, None], INT8.values()[None, :]
    big = TableMultiplier("test:big", xs * ws + (1 << 22) * (xs % 3), UINT8, INT8,
                          Power(mw=None, relative=1.0, source="test table"))
    x = torch.full((1, 300, 2, 2), 2)
    x[0, 0, 0, 0] = 5
    w = torch.randint(-128, 128, (2, 300, 2, 2), generator=torch.Generator().manual_seed(0))
    p = plan(big, w)
    assert p.out_bound >= 2**31
    got = approx_conv2d(x, w, big)
    assert got.dtype == torch.int64
    ref = reference_conv2d(x, w, big)
    assert int(ref.abs().max()) >= 2**31
    assert_exact(got, ref)


def _saturating_conv(x8, packed, c_out, stride, padding, groups):
    """A non-VNNI style kernel: pairs of uint8 x int8 products saturate at int16 (groups=1)."""
    w = _saturating_conv.weights
    x8 = F.pad(x8, (padding[1], padding[1], padding[0], padding[0]))
    cols = F.unfold(x8.double(), w.shape[2:], stride=stride)  # (N, K, L), K = C * kh * kw
    prod = cols[:, None] * w.reshape(w.shape[0], -1, 1).double()  # (N, Cout, K, L)
    if prod.shape[2] % 2:
        prod = F.pad(prod, (0, 0, 0, 1))
    pairs = prod.reshape(prod.shape[0], prod.shape[1], -1, 2, prod.shape[3]).sum(3)
    sums = pairs.clamp(-2**15, 2**15 - 1).sum(2)
    ho = (x8.shape[2] - w.shape[2]) // stride[0] + 1
    return sums.reshape(x8.shape[0], w.shape[0], ho, -1).float()


def _float32_accumulating_conv(x8, packed, c_out, stride, padding, groups):
    """A kernel accumulating in float32, term by term in input order (rounds partial sums
    beyond 2^24); groups=1. A Python loop, because torch's own float32 conv sums in a blocked
    order that depends on the thread count and may happen to stay exact, and torch's cumsum
    accumulates float32 in double."""
    w = _saturating_conv.weights
    x8 = F.pad(x8, (padding[1], padding[1], padding[0], padding[0]))
    cols = F.unfold(x8.double(), w.shape[2:], stride=stride)  # (N, K, L)
    prod = (cols[:, None] * w.reshape(w.shape[0], -1, 1).double()).float()  # (N, Cout, K, L)
    sums = torch.zeros_like(prod[:, :, 0])
    for k in range(prod.shape[2]):
        sums = sums + prod[:, :, k]
    ho = (x8.shape[2] - w.shape[2]) // stride[0] + 1
    return sums.reshape(x8.shape[0], w.shape[0], ho, -1)


@pytest.mark.parametrize("fake", [_saturating_conv, _float32_accumulating_conv])
def test_selftest_rejects_a_broken_kernel_and_the_engine_falls_back(fake, monkeypatch,
                                                                     assert_exact):
    monkeypatch.setattr(onednn, "prepack", lambda w8, stride, padding, groups, x_shape=None:
                        setattr(_saturating_conv, "weights", w8) or w8)
    monkeypatch.setattr(onednn, "conv", fake)
    onednn.selftest.cache_clear()
    try:
        result = onednn.selftest()
        assert not result.ok and "differ from float64" in result.detail
        x = torch.randint(0, 256, (1, 4, 5, 5), generator=torch.Generator().manual_seed(0))
        w = torch.randint(-128, 128, (3, 4, 3, 3), generator=torch.Generator().manual_seed(1))
        assert plan("marlin:7", w).kernel == "float32"
        with pytest.raises(UnsafePathError, match="self-test failed"):
            plan("marlin:7", w, kernel="onednn-u8s8")
        assert_exact(approx_conv2d(x, w, "marlin:7", padding=1),
                     reference_conv2d(x, w, "marlin:7", padding=1))
    finally:
        onednn.selftest.cache_clear()


@pytest.mark.skipif(not onednn.available(), reason="the real oneDNN kernel fails its self-test")
def test_selftest_passes_the_real_kernel_on_known_sums():
    x = torch.full((1, 64, 1, 1), 255, dtype=torch.uint8).contiguous(
        memory_format=torch.channels_last)
    w = torch.full((1, 64, 1, 1), -128, dtype=torch.int8)
    got = onednn.conv(x, onednn.prepack(w, (1, 1), (0, 0), 1), 1, (1, 1), (0, 0), 1)
    assert float(got) == 64 * 255 * -128
    assert onednn.selftest().ok
