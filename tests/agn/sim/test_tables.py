"""Signed EvoApprox circuits and random tables of every rank, bit-exact on every applicable path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from agn.sim import PATHS, UnsafePathError, approx_conv2d, factorise_table, plan, reference_conv2d
from hwlib import INT8, UINT8, Power, TableMultiplier

GEOMETRY = {"stride": (2, 1), "padding": (1, 2), "groups": 2}


def _check_all_paths(m, x, w, zp, assert_exact, **geo):
    ref = reference_conv2d(x, w, m, zero_point=zp, **geo)
    assert_exact(approx_conv2d(x, w, m, zero_point=zp, **geo), ref, f"{m.spec} default")
    ran = []
    for path in PATHS:
        try:
            got = approx_conv2d(x, w, m, zero_point=zp, path=path, **geo)
        except UnsafePathError:
            continue
        assert_exact(got, ref, f"{m.spec} {path}")
        ran.append(path)
    return ran


def test_signed_evoapprox_aliases(signed_evo, random_layer, assert_exact):
    gen = torch.Generator().manual_seed(11)
    for i, m in enumerate(signed_evo):
        assert (m.network_x_domain().lo, m.network_x_domain().hi) == (0, 127)
        x, w = random_layer(gen, m, 2, 4, 6, 5, 4, (3, 3), groups=2)
        ran = _check_all_paths(m, x, w, zp=(0, 17, 127)[i % 3], assert_exact=assert_exact,
                               **GEOMETRY)
        assert "gather" in ran and len(ran) == 2, (m.spec, ran)
        assert plan(m, w).path in ("exact", "structured"), m.spec


@pytest.mark.parametrize("rank", [1, 4, 16, None], ids=lambda r: f"rank{r or 'full'}")
def test_random_tables(rank, random_table, random_layer, assert_exact):
    gen = torch.Generator().manual_seed(rank or 99)
    m = random_table(rank, seed=rank or 99)
    x, w = random_layer(gen, m, 2, 4, 5, 6, 6, (3, 3), groups=2)
    ran = _check_all_paths(m, x, w, zp=200, assert_exact=assert_exact, **GEOMETRY)
    if rank is None:
        assert ran == ["gather"]
        assert plan(m, w).rank == 256
    else:
        assert ran == ["factorised", "gather"]
        p = plan(m, w, path="factorised")
        assert p.rank == rank
        assert p.kernel == "onednn-u8s8"  # integer factors from the lattice basis
        assert plan(m, w).path == "factorised"


def test_float_coefficients_when_no_integer_basis_is_found(monkeypatch, random_table,
                                                           random_layer, assert_exact):
    from agn.sim import factors, lattice

    monkeypatch.setattr(lattice, "integer_factors", lambda *args: None)
    m = random_table(4, seed=31)
    t = factors.terms_for(m)
    assert t is not None and not t.integral and 0 < t.residual < 1 / 16
    gen = torch.Generator().manual_seed(31)
    x, w = random_layer(gen, m, 2, 4, 5, 6, 6, (3, 3), groups=2)
    assert plan(m, w, path="factorised").kernel == "float64"
    ran = _check_all_paths(m, x, w, zp=3, assert_exact=assert_exact, **GEOMETRY)
    assert ran == ["factorised", "gather"]


def test_factorisation_is_exact_for_integer_and_rational_coefficients():
    rng = np.random.default_rng(2)
    f, g = rng.integers(-4, 5, (3, 256)), rng.integers(-4, 5, (3, 256))
    ff, gg, residual = factorise_table(f.T @ g, 16)  # rational in rows of the table: a basis
    assert ff.dtype == gg.dtype == np.int64 and gg.shape == (3, 256) and residual == 0.0
    np.testing.assert_array_equal(ff.T @ gg, f.T @ g)
    assert np.abs(ff).max() <= 4 and np.abs(gg).max() <= 4  # as short as the factors made of
    rank1 = np.outer(rng.integers(-5, 6, 256), 6 * rng.integers(-5, 6, 256))
    f1, g1, r1 = factorise_table(rank1, 16)
    assert f1.dtype == np.int64 and r1 == 0.0  # gcd moved to the activation side
    np.testing.assert_array_equal(f1.T @ g1, rank1)
    assert factorise_table(rng.integers(-9, 10, (256, 256)), 16) is None


def test_padding_goes_through_the_multiplier_with_the_zero_point(assert_exact):
    # approx(x, w) = x*w + 5 + x: approx(x, 0) != 0 and approx(zp, w) != x*w
    xs, ws = UINT8.values()[:, None], INT8.values()[None, :]
    m = TableMultiplier("test:offset", xs * ws + 5 + xs + 0 * ws, UINT8, INT8,
                        Power(mw=None, relative=1.0, source="test table"))
    x = torch.zeros(1, 2, 3, 3, dtype=torch.uint8)
    w = torch.zeros(1, 2, 3, 3, dtype=torch.int8)
    for path in ("factorised", "gather"):
        got = approx_conv2d(x, w, m, padding=1, zero_point=7, path=path)
        # centre: 18 real taps of (0, 0) -> 5 each; corner: 10 padded taps of (7, 0) -> 12 each
        assert int(got[0, 0, 1, 1]) == 18 * 5
        assert int(got[0, 0, 0, 0]) == 8 * 5 + 10 * 12
    x2 = torch.randint(0, 256, (2, 2, 4, 5), generator=torch.Generator().manual_seed(0))
    w2 = torch.randint(-128, 128, (3, 2, 3, 3), generator=torch.Generator().manual_seed(1))
    assert_exact(approx_conv2d(x2, w2, m, padding=1, zero_point=7),
                 reference_conv2d(x2, w2, m, padding=1, zero_point=7))



POSITION_BYTES = 256 * 4 * 6 * 4  # n_x * Cout/groups * C/groups * float32


@pytest.mark.parametrize("chunk_bytes", [1, 2 * POSITION_BYTES, 10 * POSITION_BYTES])
def test_gather_chunking_over_kernel_positions(chunk_bytes, monkeypatch, random_table,
                                               random_layer, assert_exact):
    """Chunks of one kernel position, of two (part of a row), and of two rows sum exactly."""
    from agn.sim import clear_cache, engine, kernels

    monkeypatch.setattr(kernels, "GATHER_CHUNK_BYTES", chunk_bytes)
    clear_cache()
    m = random_table(None, seed=5)
    gen = torch.Generator().manual_seed(8)
    x, w = random_layer(gen, m, 2, 12, 6, 7, 8, (3, 5), groups=2)
    got = approx_conv2d(x, w, m, stride=(1, 2), padding=(2, 1), groups=2, zero_point=9)
    n_chunks = {1: 15, 2 * POSITION_BYTES: 9, 10 * POSITION_BYTES: 2}[chunk_bytes]
    prepared = [entry[2] for entry in engine._CACHE.values()]
    assert [len(p.chunks) for p in prepared] == [n_chunks]
    clear_cache()
    assert_exact(got, reference_conv2d(x, w, m, stride=(1, 2), padding=(2, 1), groups=2,
                                       zero_point=9))
