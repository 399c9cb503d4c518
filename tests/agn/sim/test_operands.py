"""Operand checking, float inputs, autograd tensors and the weight-transform cache."""
from __future__ import annotations

import pytest
import torch

import hwlib
from agn.sim import OperandError, approx_conv2d, describe, reference_conv2d
from hwlib import DomainError

X = torch.randint(0, 256, (2, 3, 6, 6), generator=torch.Generator().manual_seed(0))
W = torch.randint(-128, 128, (4, 3, 3, 3), generator=torch.Generator().manual_seed(1))
X[0, 0, 0, 0], W[0, 0, 0, 0] = 255, 127


def test_out_of_domain_values_are_named():
    with pytest.raises(DomainError, match=r"value 256 outside its domain \[0, 255\]"):
        approx_conv2d(X + 1, W, "marlin:5")
    with pytest.raises(DomainError, match=r"operand w of marlin:5: value 128"):
        approx_conv2d(X, W.clamp(min=0) + 1, "marlin:5")
    evo = hwlib.get("evo:mul8s_1L2N")
    with pytest.raises(DomainError, match=r"value 255 outside .*\[0, 127\]"):
        approx_conv2d(X, W, evo)
    with pytest.raises(DomainError, match=r"zero_point of marlin:5: value 300"):
        approx_conv2d(X, W, "marlin:5", padding=1, zero_point=300)


def test_non_integer_and_nan_floats_are_rejected():
    xf = X.float()
    xf[0, 0, 0, 0] = 3.5
    with pytest.raises(DomainError, match="value 3.5 is not an integer"):
        approx_conv2d(xf, W, "marlin:5")
    xf[0, 0, 0, 0] = float("nan")
    with pytest.raises(DomainError, match="NaN"):
        approx_conv2d(xf, W, "marlin:5")
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        approx_conv2d(X.numpy(), W, "marlin:5")
    with pytest.raises(TypeError, match="hwlib.Multiplier or a spec string"):
        approx_conv2d(X, W, 5)


def test_geometry_errors():
    with pytest.raises(OperandError, match=r"groups=3 must divide C=3 and Cout=4"):
        approx_conv2d(X, W, "marlin:1", groups=3)
    with pytest.raises(OperandError, match=r"w has 3 input channels per group, expected"):
        approx_conv2d(torch.cat([X, X], 1), W, "marlin:1")
    with pytest.raises(OperandError, match=r"stride: expected an int or a pair of ints >= 1"):
        approx_conv2d(X, W, "marlin:1", stride=0)
    with pytest.raises(OperandError, match=r"padding: .* got \(1, 2, 3\)"):
        approx_conv2d(X, W, "marlin:1", padding=(1, 2, 3))
    with pytest.raises(OperandError, match="4-D"):
        approx_conv2d(X[0], W, "marlin:1")
    with pytest.raises(OperandError, match="kernel 3x3 larger"):
        approx_conv2d(X[:, :, :2, :2], W, "marlin:1")


def test_float_and_grad_tensors_match_integer_tensors(assert_exact):
    ref = reference_conv2d(X, W, "marlin:99", padding=1, zero_point=4)
    xf = X.float().requires_grad_()
    wf = W.float().requires_grad_()
    got = approx_conv2d(xf, wf, "marlin:99", padding=1, zero_point=4)
    assert not got.requires_grad
    assert_exact(got, ref)
    with torch.no_grad():
        assert_exact(approx_conv2d(X.to(torch.uint8), W.to(torch.int8), "marlin:99", padding=1,
                                   zero_point=4), ref)


def test_cache_follows_in_place_weight_updates(assert_exact):
    w = W.float().clone()
    first = approx_conv2d(X, w, "marlin:200")
    assert_exact(first, reference_conv2d(X, w, "marlin:200"))
    with torch.no_grad():
        w.clamp_(-100, 100).add_(3)  # an optimizer-style in-place step bumps the version
    assert_exact(approx_conv2d(X, w, "marlin:200"), reference_conv2d(X, w, "marlin:200"))
    fresh = W.float().clone()  # a new tensor, possibly at a recycled address
    assert_exact(approx_conv2d(X, fresh, "marlin:200"), first)


def test_describe_names_the_path():
    p = describe("marlin:15", W)
    assert (p.path, p.rank) == ("structured", 5)
    assert str(p).startswith("structured/")
    assert p.out_bound == float(hwlib.get("marlin:15").table().__abs__().max(0)[
        (W + 128).reshape(4, -1).numpy()].sum(1).max())


def test_cache_evicts_beyond_its_byte_budget(monkeypatch, assert_exact):
    from agn.sim import clear_cache, engine

    clear_cache()
    monkeypatch.setattr(engine, "CACHE_BYTES", 1)
    for level in (3, 4, 5):
        assert_exact(approx_conv2d(X, W, f"marlin:{level}"),
                     reference_conv2d(X, W, f"marlin:{level}"))
    assert len(engine._CACHE) == 1  # only the newest entry stays
    clear_cache()


def test_cache_byte_total_follows_inserts_evictions_and_clear(monkeypatch, assert_exact):
    from agn.sim import clear_cache, engine

    def held() -> int:
        return sum(entry[2].nbytes for entry in engine._CACHE.values())

    clear_cache()
    assert engine.cache_bytes() == 0
    for level in (3, 4, 5, 6):
        approx_conv2d(X, W, f"marlin:{level}")
        approx_conv2d(X, W, f"marlin:{level}", stride=2)
        assert engine.cache_bytes() == held() > 0
    assert len(engine._CACHE) == 8
    budget = engine.cache_bytes() // 2
    monkeypatch.setattr(engine, "CACHE_BYTES", budget)
    assert_exact(approx_conv2d(X, W, "marlin:7"), reference_conv2d(X, W, "marlin:7"))
    n = len(engine._CACHE)
    assert 1 < n < 9 and engine.cache_bytes() == held() <= budget
    oldest = next(iter(engine._CACHE.values()))
    engine._remember(next(iter(engine._CACHE)), oldest)  # replacing an entry
    assert len(engine._CACHE) == n and engine.cache_bytes() == held()
    clear_cache()
    assert engine.cache_bytes() == 0 and not engine._CACHE
