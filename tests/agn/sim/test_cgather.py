"""The compiled gather kernel and its embedding_bag fallback: both bit-exact on full-rank tables."""
from __future__ import annotations

import pytest
import torch

from agn.sim import approx_conv2d, cgather, ckernel, clear_cache, kernels, reference_conv2d
from hwlib import Domain

# (N, C, H, W, Cout, (kh, kw), stride, padding, groups, zero point): output widths per group
# of 1, 3, 16, 20 and 70 columns (whole and partial vectors, more than one 64-column block)
GEOMETRIES = [
    (2, 3, 7, 6, 3, (3, 3), 1, 1, 1, 0),
    (1, 6, 9, 9, 6, (3, 3), 2, (1, 0), 6, 5),          # depthwise, stride 2
    (2, 4, 5, 8, 32, (1, 3), (1, 2), (0, 2), 2, 255),  # grouped, 16 columns per group
    (1, 5, 6, 5, 20, (5, 5), 1, 2, 1, 7),
    (2, 2, 4, 4, 70, (3, 3), 1, 1, 1, 1),
]


@pytest.fixture(autouse=True)
def fresh_kernel():
    ckernel.reset()
    clear_cache()
    yield
    ckernel.reset()
    clear_cache()


@pytest.fixture
def count_gathers(monkeypatch, compiler_found):
    """Calls of the compiled gather by the engine (the library is loaded, and so self-checked,
    first where a compiler exists)."""
    if compiler_found:
        ckernel.library()
    calls = []
    real = cgather.gather

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cgather, "gather", spy)
    return calls


def _check(m, assert_exact, dtype=torch.uint8) -> None:
    gen = torch.Generator().manual_seed(6)
    xd = m.network_x_domain()
    for i, (n, c, h, w, cout, k, stride, padding, groups, zp) in enumerate(GEOMETRIES):
        x = torch.randint(xd.lo, xd.hi + 1, (n, c, h, w), generator=gen).to(dtype)
        wt = torch.randint(-128, 128, (cout, c // groups, *k), generator=gen, dtype=torch.int8)
        zp = min(max(zp, xd.lo), xd.hi)
        got = approx_conv2d(x, wt, m, stride, padding, groups, zp, path="gather")
        assert_exact(got, reference_conv2d(x, wt, m, stride, padding, groups, zp),
                     f"{m.spec} geometry {i}")


@pytest.mark.usefixtures("c_compiler")
@pytest.mark.parametrize("mode", ["c", "torch"])
def test_both_gather_builders_are_exact(mode, monkeypatch, count_gathers, random_table,
                                        assert_exact):
    monkeypatch.setenv(ckernel.ENV, mode)
    _check(random_table(None, seed=2), assert_exact)
    assert (len(count_gathers) > 0) == (mode == "c")


@pytest.mark.usefixtures("c_compiler")
def test_compiled_gather_with_an_offset_domain_and_wide_inputs(monkeypatch, count_gathers,
                                                                random_table, assert_exact):
    """Activations 3..130 (indices x - 3) handed over as int64 and as float."""
    monkeypatch.setenv(ckernel.ENV, "c")
    m = random_table(None, seed=4, x_domain=Domain("u3", 3, 130))
    _check(m, assert_exact, torch.int64)
    _check(m, assert_exact, torch.float32)
    assert count_gathers


@pytest.mark.usefixtures("c_compiler")
@pytest.mark.parametrize("chunk_bytes", [1, 3 * 256 * 4 * 7])
def test_compiled_gather_sums_tap_chunks(chunk_bytes, monkeypatch, count_gathers, random_table,
                                         assert_exact):
    """One tap per pass, and passes that end inside a kernel position."""
    monkeypatch.setenv(ckernel.ENV, "c")
    monkeypatch.setattr(kernels, "GATHER_CHUNK_BYTES", chunk_bytes)
    m = random_table(None, seed=5)
    gen = torch.Generator().manual_seed(8)
    x = torch.randint(0, 256, (2, 10, 6, 7), generator=gen, dtype=torch.uint8)
    w = torch.randint(-128, 128, (6, 5, 3, 2), generator=gen, dtype=torch.int8)
    got = approx_conv2d(x, w, m, stride=(2, 1), padding=(1, 2), groups=2, zero_point=9)
    assert len(count_gathers) == 2 * {1: 30, 3 * 256 * 4 * 7: 5}[chunk_bytes]
    assert_exact(got, reference_conv2d(x, w, m, stride=(2, 1), padding=(1, 2), groups=2,
                                       zero_point=9))


@pytest.mark.usefixtures("c_compiler")
def test_a_wrong_gather_kernel_is_caught_by_the_self_check(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    good, bad = "case 3: memcpy(&q, r + 32, 64); a[2] += q;", "case 3: a[2] += q;"
    assert ckernel.SOURCE.count(good) == 1
    monkeypatch.setattr(ckernel, "SOURCE", ckernel.SOURCE.replace(good, bad))
    assert ckernel.library() is None
    assert "gather of columns" in ckernel.status()


def test_no_compiler_gathers_with_embedding_bag(tmp_path, monkeypatch, count_gathers,
                                                random_table, assert_exact):
    ckernel.reset()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang
    assert ckernel.library() is None
    _check(random_table(None, seed=3), assert_exact)
    assert not count_gathers
