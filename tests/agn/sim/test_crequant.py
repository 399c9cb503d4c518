"""The compiled requantisation and its torch fallback: both bit-exact with the NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import deploy
from agn import intsim
from agn.sim import ckernel, clear_cache, crequant
from deploy import zoo
from deploy.ir import Requant


@pytest.fixture(autouse=True)
def fresh_kernel():
    ckernel.reset()
    clear_cache()
    yield
    ckernel.reset()
    clear_cache()


@pytest.mark.usefixtures("c_compiler")
@pytest.mark.parametrize("channels", [6, 70])
@pytest.mark.parametrize("layout", ["nchw", "channels-last", "2d"])
@pytest.mark.parametrize("shared_shift", [True, False])
def test_compiled_requant_matches_the_torch_one(layout, shared_shift, channels, monkeypatch):
    lib = ckernel.library()
    assert lib is not None, ckernel.status()
    rng = np.random.default_rng(3)
    c = channels
    shift = np.full(c, 36) if shared_shift else rng.integers(32, 40, c)
    rq = Requant(mult=rng.integers(1, 2**31, c), shift=shift, zp_out=7, lo=2, hi=251)
    bias = rng.integers(-2**10, 2**10, c).astype(np.int32)
    shape = (5, c) if layout == "2d" else (3, c, 4, 5)
    acc = torch.from_numpy(rng.integers(-2**13, 2**13, shape).astype(np.int32))
    if layout == "channels-last":
        acc = acc.contiguous(memory_format=torch.channels_last)
    got = crequant.requant(lib, acc, crequant.constants(rq.mult, rq.shift, bias), rq.zp_out,
                           rq.lo, rq.hi)
    assert got is not None and got.dtype == torch.uint8 and got.stride() == acc.stride()
    monkeypatch.setenv(ckernel.ENV, "torch")
    want = intsim._requant(acc, rq, bias, owned=False)
    assert torch.equal(got, want)
    clipped = int((want == rq.lo).sum()) + int((want == rq.hi).sum())
    assert 0 < clipped < want.numel()  # both clipped and in-range values checked


@pytest.mark.usefixtures("c_compiler")
def test_other_layouts_and_wide_accumulators_are_left_to_torch():
    lib = ckernel.library()
    assert lib is not None
    consts = crequant.constants(np.ones(4), np.ones(4), None)
    wide = torch.zeros((2, 4, 3, 3), dtype=torch.int64)
    strided = torch.zeros((2, 4, 3, 6), dtype=torch.int32)[..., ::2]
    assert crequant.requant(lib, wide, consts, 0, 0, 255) is None
    assert crequant.requant(lib, strided, consts, 0, 0, 255) is None


@pytest.mark.parametrize("mode", ["auto", "torch"])
def test_random_networks_match_the_reference_either_way(mode, monkeypatch):
    monkeypatch.setenv(ckernel.ENV, mode)
    for seed in range(6):
        net = zoo.random_network(300 + seed)
        x = np.random.default_rng(seed).integers(0, 256, (3,) + net.input.shape, dtype=np.uint8)
        ref = deploy.run(net, x)
        fast = intsim.run_integer(net, x, keep=True)
        for name in ref:
            assert np.array_equal(ref[name].astype(np.int64),
                                  fast[name].numpy().astype(np.int64)), (seed, name)


@pytest.mark.usefixtures("c_compiler")
def test_a_wrong_requant_kernel_is_caught_by_the_self_check(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    good, bad = ">> s) + zp;", ">> s) + zp + 1;"
    assert ckernel.SOURCE.count(good) == 1
    monkeypatch.setattr(ckernel, "SOURCE", ckernel.SOURCE.replace(good, bad))
    assert ckernel.library() is None
    assert "requantisation of a nchw block of 5 channels differs" in ckernel.status()
