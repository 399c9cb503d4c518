"""MARLIN levels through every engine path, bit-exact against the brute-force reference."""
from __future__ import annotations

import pytest
import torch

import hwlib
from agn.sim import KERNELS, UnsafePathError, approx_conv2d, plan, reference_conv2d

# (N, C, H, W, Cout, (kh, kw), stride, padding, groups)
GEOMETRIES = [
    (2, 4, 7, 6, 6, (3, 3), 1, 1, 1),
    (1, 6, 9, 9, 6, (3, 3), 2, (1, 0), 6),       # depthwise, batch 1, stride 2
    (3, 6, 5, 8, 4, (1, 3), (1, 2), (0, 2), 2),  # grouped, odd kernel
    (1, 3, 11, 7, 5, (5, 5), 1, 2, 1),
    (2, 8, 4, 4, 3, (1, 1), 1, 0, 1),
]
SAMPLE_LEVELS = [1, 2, 15, 64, 127, 128, 200, 255]


def test_all_256_levels_default_plan(random_layer, assert_exact):
    gen = torch.Generator().manual_seed(0)
    x, w = random_layer(gen, hwlib.get("marlin:0"), 2, 3, 5, 6, 4, (3, 3))
    for level in range(256):
        spec = f"marlin:{level}"
        ref = reference_conv2d(x, w, spec, padding=1, zero_point=5)
        assert_exact(approx_conv2d(x, w, spec, padding=1, zero_point=5), ref, spec)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"C{g[1]}k{g[5]}g{g[8]}")
def test_sampled_levels_every_kernel(geometry, random_layer, assert_exact):
    n, c, h, wd, cout, k, stride, padding, groups = geometry
    gen = torch.Generator().manual_seed(hash(geometry) % 1000)
    x, w = random_layer(gen, hwlib.get("marlin:0"), n, c, h, wd, cout, k, groups)
    for i, level in enumerate(SAMPLE_LEVELS):
        spec, zp = f"marlin:{level}", (0, 3, 255)[i % 3]
        ref = reference_conv2d(x, w, spec, stride, padding, groups, zp)
        for kernel in KERNELS:
            got = approx_conv2d(x, w, spec, stride, padding, groups, zp, kernel=kernel)
            assert_exact(got, ref, f"{spec} {kernel}")
        got = approx_conv2d(x, w, spec, stride, padding, groups, zp, path="gather")
        assert_exact(got, ref, f"{spec} gather")


def test_structured_plan_names_rank():
    assert plan("marlin:0", (8, 8, 3, 3)).path == "exact"
    p15 = plan("marlin:15", (8, 8, 3, 3))
    assert (p15.path, p15.rank) == ("structured", 5)  # 4 bit terms + compensation
    assert plan("marlin:255", (8, 8, 3, 3)).rank == 9


def test_large_fan_in_3x3x512_slices_the_channels(random_layer, assert_exact):
    gen = torch.Generator().manual_seed(5)
    m = hwlib.get("marlin:255")
    x, w = random_layer(gen, m, 1, 512, 3, 3, 3, (3, 3))
    x[:] = 255  # worst case activations
    w = -w.abs()  # no cancellation: the sums really pass 2^24
    p = plan(m, w)
    assert (p.kernel, p.slices) == ("onednn-u8s8", 5), p  # |acc| <= 4.74 * 2^24
    ref = reference_conv2d(x, w, m, padding=1)
    assert_exact(approx_conv2d(x, w, m, padding=1), ref, "3x3x512")
    assert int(ref.abs().max()) >= 2**24  # the float32 output of one conv would have rounded
    x2 = x[:, :510]  # odd slices (102 channels, padded to 104), explicit zero-point padding
    assert_exact(approx_conv2d(x2, w[:, :510], m, padding=1, zero_point=7),
                 reference_conv2d(x2, w[:, :510], m, padding=1, zero_point=7), "510 channels")
    for kernel in ("float64", "float32"):
        if kernel == "float32":
            with pytest.raises(UnsafePathError):
                approx_conv2d(x, w, m, padding=1, kernel=kernel)
        else:
            assert_exact(approx_conv2d(x, w, m, padding=1, kernel=kernel), ref, kernel)
    small = w.clamp(-2, 2)  # small weights keep the oneDNN output below 2^24
    assert plan(m, small).kernel == "onednn-u8s8"
    assert_exact(approx_conv2d(x, small, m, padding=1), reference_conv2d(x, small, m, padding=1))


def test_batch_slices_and_feature_offsets(monkeypatch, random_table, random_layer, assert_exact):
    """One image per feature slice; a table whose features need an offset correction."""
    from agn.sim import clear_cache, kernels
    from agn.sim.factors import u8s8_for

    monkeypatch.setattr(kernels, "FEATURE_CHUNK_BYTES", 1)
    clear_cache()
    shifted = random_table(1, seed=21)
    assert u8s8_for(shifted).offset.any()  # features below 0 are shifted into 0..255
    gen = torch.Generator().manual_seed(6)
    for m in (hwlib.get("marlin:200"), shifted):
        x, w = random_layer(gen, m, 3, 6, 5, 4, 6, (3, 3), groups=3)
        ref = reference_conv2d(x, w, m, 1, 1, 3, 2)
        for kernel in ("onednn-u8s8", "float32"):
            assert_exact(approx_conv2d(x, w, m, 1, 1, 3, 2, kernel=kernel), ref, f"{m} {kernel}")
    clear_cache()
