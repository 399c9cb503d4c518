"""The oneDNN uint8 x int8 kernel on one-column outputs with a column stride above 1.

oneDNN returns wrong sums for some of these geometries on some CPUs (Intel Cascade Lake) and not
on others (AMD EPYC), so nothing here asserts the fault itself. Asserted instead, on every CPU,
with the workaround active and with it undone: the start-up self-test passes only if the raw
kernel is exact on every such geometry, and the engine's conv is exact on all of them against
the table-lookup reference (on the oneDNN kernel when the self-test passes, on a fallback when
not).
"""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from agn.sim import approx_conv2d, clear_cache, onednn, plan, reference_conv2d

STRIDES = [(1, 2), (2, 2), (1, 3), (2, 3)]


def one_column_cases(stride: tuple[int, int], groups: int, seed: int):
    """Random (x, w, padding) for every small geometry whose output is one column wide."""
    gen = torch.Generator().manual_seed(seed)
    for (kh, kw), (py, px), h in itertools.product([(3, 2), (2, 3), (4, 4), (1, 3)],
                                                   [(0, 0), (1, 0), (2, 1)], range(1, 13)):
        if h + 2 * py < kh:
            continue
        for w in range(max(1, kw - 2 * px), kw - 2 * px + stride[1]):  # every one-column width
            x = torch.randint(0, 256, (2, 4 * groups, h, w), generator=gen, dtype=torch.uint8)
            wt = torch.randint(-128, 128, (2 * groups, 4, kh, kw), generator=gen,
                               dtype=torch.int8)
            yield x, wt, (py, px)


@pytest.fixture(params=["workaround", "workaround undone"])
def workaround(request, monkeypatch):
    """Run a test with conv()'s one-column workaround active and undone (self-test re-run)."""
    if request.param == "workaround undone":
        monkeypatch.setattr(onednn, "_one_column_fix", lambda *args: 0)
    onednn.selftest.cache_clear()
    clear_cache()
    yield request.param
    onednn.selftest.cache_clear()
    clear_cache()


@pytest.mark.skipif(not onednn.available(), reason="no oneDNN uint8 x int8 kernel that passes "
                    "the self-test on this CPU (the engine test below still runs)")
@pytest.mark.parametrize("stride", STRIDES)
@pytest.mark.parametrize("groups", [1, 2])
def test_the_self_test_passes_only_a_kernel_exact_on_every_one_column_geometry(
        stride, groups, workaround):
    result = onednn.selftest()
    if workaround == "workaround":
        assert result.ok, result.detail
    if not result.ok:  # the only case the workaround touches is the one-column one
        assert result.detail.startswith("case 4:"), result.detail
        return
    checked = 0
    for x, wt, pad in one_column_cases(stride, groups, stride[0] * 10 + stride[1] + groups):
        packed = onednn.prepack(wt, stride, pad, groups)
        got = onednn.conv(x.contiguous(memory_format=torch.channels_last), packed,
                          wt.shape[0], stride, pad, groups)
        ref = F.conv2d(x.double(), wt.double(), stride=stride, padding=pad, groups=groups)
        assert ref.shape[3] == 1
        assert got.shape == ref.shape and torch.equal(got.double(), ref), (wt.shape, pad, x.shape)
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("stride", STRIDES)
def test_the_engine_is_exact_on_every_one_column_geometry(stride, workaround):
    oneDNN = onednn.selftest().ok
    checked = 0
    for groups in (1, 2):
        for x, wt, pad in one_column_cases(stride, groups, stride[0] * 10 + stride[1]):
            assert (plan("marlin:7", wt, groups=groups).kernel == "onednn-u8s8") == oneDNN
            got = approx_conv2d(x, wt, "marlin:7", stride=stride, padding=pad, groups=groups)
            ref = reference_conv2d(x, wt, "marlin:7", stride=stride, padding=pad, groups=groups)
            assert got.shape == ref.shape and torch.equal(got.long(), ref.long()), \
                (wt.shape, pad, x.shape)
            clear_cache()  # hundreds of distinct weights: keep the engine's cache small
            checked += 1
    assert checked > 200
