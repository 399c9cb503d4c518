"""approx_linear: bit-exact against the reference for MARLIN, EvoApprox and random tables."""
from __future__ import annotations

import pytest
import torch

import hwlib
from agn.sim import OperandError, approx_linear, reference_linear


@pytest.mark.parametrize("spec", ["marlin:0", "marlin:3", "marlin:128", "marlin:255"])
def test_marlin_linear_every_kernel(spec, assert_exact):
    gen = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (5, 300), generator=gen)
    w = torch.randint(-128, 128, (7, 300), generator=gen)
    ref = reference_linear(x, w, spec)
    for kernel in ("onednn-u8s8", "float32", "float64"):
        assert_exact(approx_linear(x, w, spec, kernel=kernel), ref, f"{spec} {kernel}")
    assert_exact(approx_linear(x, w, spec, path="gather"), ref, f"{spec} gather")


def test_linear_tables_batch_one(signed_evo, random_table, assert_exact):
    gen = torch.Generator().manual_seed(4)
    for m in [signed_evo[7], signed_evo[12], random_table(4, 1), random_table(None, 2)]:
        xd = m.network_x_domain()
        x = torch.randint(xd.lo, xd.hi + 1, (1, 33), generator=gen).float()  # fake-quant floats
        w = torch.randint(-128, 128, (3, 33), generator=gen).float()
        got = approx_linear(x, w, m)
        assert got.shape == (1, 3)
        assert_exact(got, reference_linear(x, w, m), m.spec)


def test_linear_shape_errors():
    m = hwlib.get("marlin:1")
    with pytest.raises(OperandError, match="K=4 features but w expects K=5"):
        approx_linear(torch.zeros(2, 4), torch.zeros(3, 5), m)
    with pytest.raises(OperandError, match=r"x \(N, K\)"):
        approx_linear(torch.zeros(2, 4, 1), torch.zeros(3, 4), m)
