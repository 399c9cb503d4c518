"""The int8 matrix product of 1x1 layers: bit-exact, self-tested, the oneDNN conv as fallback."""
from __future__ import annotations

import pytest
import torch

import hwlib
from agn.sim import approx_conv2d, approx_linear, clear_cache, engine, intmm, reference_linear

SPECS = ["marlin:0", "marlin:15", "marlin:128", "marlin:255", "evo:mul8s_1KVM"]


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _last_kernel():
    return next(reversed(engine._CACHE.values()))[2]


def _check(assert_exact, spec: str, gen: torch.Generator, expect_gemm: bool) -> None:
    m = hwlib.get(spec)
    xd = m.network_x_domain()
    # (N, K, Cout): one product, one row, one column (the strides _int_mm misread), a wide K
    for n, k, cout in [(1, 1, 1), (1, 1, 7), (5, 1, 3), (2, 33, 1), (9, 300, 20)]:
        x = torch.randint(xd.lo, xd.hi + 1, (n, k), generator=gen)
        w = torch.randint(-128, 128, (cout, k), generator=gen)
        x[0], w[0] = xd.hi, -128  # extreme operands
        assert_exact(approx_linear(x, w, m), reference_linear(x, w, m), f"{spec} {n}x{k}x{cout}")
        assert (_last_kernel().gemm is not None) is expect_gemm, spec


@pytest.mark.parametrize("spec", SPECS)
def test_gemm_linear_bit_exact(spec, assert_exact):
    # exact on every CPU: through torch._int_mm where it passes its self-test, else the fallback
    _check(assert_exact, spec, torch.Generator().manual_seed(5), expect_gemm=intmm.available())


def test_fallback_when_selftest_fails(monkeypatch, assert_exact):
    monkeypatch.setattr(intmm, "available", lambda: False)
    _check(assert_exact, "marlin:15", torch.Generator().manual_seed(6), expect_gemm=False)


def test_selftest_catches_a_wrong_product(monkeypatch):
    real, before = torch._int_mm, intmm.selftest().ok

    def saturating(a, b):  # 16-bit accumulators, as a faulty kernel might have
        return real(a, b).clamp(-2**15, 2**15 - 1)

    intmm.selftest.cache_clear()
    try:
        monkeypatch.setattr(torch, "_int_mm", saturating)
        assert not intmm.selftest().ok
        monkeypatch.setattr(torch, "_int_mm", None)
        assert "unavailable" in intmm.selftest.__wrapped__().detail
    finally:
        monkeypatch.undo()
        intmm.selftest.cache_clear()
    assert intmm.selftest().ok == before


def test_row_major_copies_misleading_strides():
    t = torch.arange(7, dtype=torch.int8).reshape(7, 1).t()  # (1, 7), strides (1, 1)
    assert t.stride() == (1, 1)
    r = intmm.row_major(t)
    assert r.stride() == (7, 1) and torch.equal(r, t)
    ok = torch.zeros(3, 4, dtype=torch.int8)
    assert intmm.row_major(ok) is ok


def test_only_one_pixel_inputs_use_it(assert_exact):
    """A 1x1 conv over a wider map keeps the oneDNN conv (same prepared kernel, same sums)."""
    from agn.sim import reference_conv2d

    gen = torch.Generator().manual_seed(8)
    x = torch.randint(0, 256, (2, 6, 3, 4), generator=gen)
    w = torch.randint(-128, 128, (5, 6, 1, 1), generator=gen)
    assert_exact(approx_conv2d(x, w, "marlin:40"), reference_conv2d(x, w, "marlin:40"), "1x1")
    x1 = torch.randint(0, 256, (3, 6, 1, 1), generator=gen)
    assert_exact(approx_conv2d(x1, w, "marlin:40"), reference_conv2d(x1, w, "marlin:40"), "px")
    assert _last_kernel().gemm is not None


def test_features_made_under_inference_mode_are_not_updated_in_place(assert_exact):
    """Validation runs under inference mode, training outside it: the feature workspace made
    in one is read in the other."""
    gen = torch.Generator().manual_seed(9)
    x = torch.randint(0, 256, (4, 30), generator=gen, dtype=torch.uint8)
    w = torch.randint(-128, 128, (5, 30), generator=gen)
    ref = reference_linear(x, w, "marlin:9")
    with torch.inference_mode():
        assert_exact(approx_linear(x, w, "marlin:9"), ref, "inference mode")
    assert_exact(approx_linear(x, w, "marlin:9"), ref, "after it")


@pytest.mark.skipif(not intmm.available(), reason="torch._int_mm failed its self-test")
def test_the_conv_fallback_is_packed_on_first_need(monkeypatch, assert_exact):
    """A kernel prepared on one-pixel inputs packs no conv; a wider map, or the other feature
    builder, packs it then, with the same sums."""
    from agn.sim import ckernel, reference_conv2d

    gen = torch.Generator().manual_seed(10)
    w = torch.randint(-128, 128, (5, 6, 1, 1), generator=gen)
    x1 = torch.randint(0, 256, (3, 6, 1, 1), generator=gen, dtype=torch.uint8)
    assert_exact(approx_conv2d(x1, w, "marlin:77"), reference_conv2d(x1, w, "marlin:77"), "px")
    k = _last_kernel()
    assert k.gemm is not None and k.slices == [] and k.pending is not None
    x = torch.randint(0, 256, (2, 6, 3, 4), generator=gen, dtype=torch.uint8)
    assert_exact(approx_conv2d(x, w, "marlin:77"), reference_conv2d(x, w, "marlin:77"), "1x1")
    assert len(k.slices) == 1
    clear_cache()
    approx_conv2d(x1, w, "marlin:77")
    if _last_kernel().gemm.compiled:  # the same kernel run with the torch feature builder
        monkeypatch.setenv(ckernel.ENV, "torch")
        assert_exact(approx_conv2d(x1, w, "marlin:77"), reference_conv2d(x1, w, "marlin:77"),
                     "torch features")
        assert len(_last_kernel().slices) == 1
