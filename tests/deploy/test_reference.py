"""The NumPy reference against a slow, obvious per-output implementation and known vectors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deploy
import hwlib
from deploy import zoo
from deploy.ir import (
    Add,
    AvgPool,
    Conv,
    Flatten,
    GlobalAvgPool,
    Input,
    Linear,
    MaxPool,
    Requant,
    Requantize,
)
from deploy.reference.requant import requantize


def _input(shape: tuple[int, int, int], zero_point: int = 0) -> Input:
    return Input(name="x", shape=shape, scale=0.1, zero_point=zero_point, mean=None, std=None)


def _requant_py(acc: int, rq: Requant, c: int) -> int:
    m, s = int(rq.mult[c]), int(rq.shift[c])
    return min(max(((acc * m + (1 << (s - 1))) >> s) + rq.zp_out, rq.lo), rq.hi)


def _products(spec: str, xs: list[int], ws: list[int]) -> int:
    return int(hwlib.get(spec)(np.array(xs), np.array(ws)).sum())


def slow_run(net: deploy.Network, x: np.ndarray) -> dict[str, np.ndarray]:
    """One sample at a time, one output at a time, Python integers, bounds checked by hand."""
    outs: dict[str, list] = {net.input.name: [s.astype(np.int64) for s in x]}
    for node in net.nodes[1:]:
        info, res = net.infos[node.name], []
        for n in range(x.shape[0]):
            ins = [outs[s][n] for s in node.inputs]
            zp = net.infos[node.inputs[0]].zero_point
            out = np.zeros(info.shape, np.int64)
            if isinstance(node, Conv):
                cout, cin_g, kh, kw = node.weight.shape
                t, _, l, _ = node.padding
                for co, oy, ox in np.ndindex(*info.shape):
                    g = co // (cout // node.groups)
                    xs, ws = [], []
                    for ci, ky, kx in np.ndindex(cin_g, kh, kw):
                        iy, ix = oy * node.stride[0] + ky - t, ox * node.stride[1] + kx - l
                        inside = 0 <= iy < ins[0].shape[1] and 0 <= ix < ins[0].shape[2]
                        xs.append(int(ins[0][g * cin_g + ci, iy, ix]) if inside else zp)
                        ws.append(int(node.weight[co, ci, ky, kx]))
                    acc = int(node.bias[co]) + _products(node.multiplier, xs, ws)
                    out[co, oy, ox] = acc if node.requant is None else \
                        _requant_py(acc, node.requant, co)
            elif isinstance(node, Linear):
                for o in range(info.shape[0]):
                    acc = int(node.bias[o]) + _products(node.multiplier, list(ins[0]),
                                                        list(node.weight[o]))
                    out[o] = acc if node.requant is None else _requant_py(acc, node.requant, o)
            elif isinstance(node, MaxPool):
                for c, oy, ox in np.ndindex(*info.shape):
                    vals = [int(ins[0][c, iy, ix])
                            for ky, kx in np.ndindex(*node.kernel)
                            for iy in [oy * node.stride[0] + ky - node.padding[0]]
                            for ix in [ox * node.stride[1] + kx - node.padding[2]]
                            if 0 <= iy < ins[0].shape[1] and 0 <= ix < ins[0].shape[2]]
                    out[c, oy, ox] = max(vals)
            elif isinstance(node, (AvgPool, GlobalAvgPool)):
                kernel = node.kernel if isinstance(node, AvgPool) else ins[0].shape[1:]
                stride = node.stride if isinstance(node, AvgPool) else (1, 1)
                for c, oy, ox in np.ndindex(*info.shape):
                    acc = sum(int(ins[0][c, oy * stride[0] + ky, ox * stride[1] + kx])
                              for ky, kx in np.ndindex(*kernel))
                    out[c, oy, ox] = _requant_py(acc, node.requant, c)
            elif isinstance(node, Add):
                for idx in np.ndindex(*info.shape):
                    v = ((int(ins[0][idx]) - node.zp_a) * node.mult_a
                         + (int(ins[1][idx]) - node.zp_b) * node.mult_b)
                    v = ((v + (1 << (node.shift - 1))) >> node.shift) + node.zp_out
                    out[idx] = min(max(v, node.lo), node.hi)
            elif isinstance(node, Flatten):
                c, h, w = ins[0].shape
                for ci, yy, xx in np.ndindex(c, h, w):
                    out[(ci * h + yy) * w + xx] = ins[0][ci, yy, xx]
            elif isinstance(node, Requantize):
                for idx in np.ndindex(*info.shape):
                    out[idx] = _requant_py(int(ins[0][idx]), node.requant, idx[0])
            res.append(out)
        outs[node.name] = res
    return {k: np.stack(v) for k, v in outs.items()}


def _assert_same(net: deploy.Network, x: np.ndarray) -> None:
    fast, slow = deploy.run(net, x), slow_run(net, x)
    assert list(fast) == [n.name for n in net.nodes]
    for name, a in fast.items():
        assert a.dtype == (np.int32 if net.infos[name].dtype == "int32" else np.uint8), name
        bad = int(np.count_nonzero(a.astype(np.int64) != slow[name]))
        assert bad == 0, f"{net.name}/{name}: {bad} of {a.size} elements differ"


@pytest.mark.parametrize("seed", range(24))
def test_reference_matches_slow_implementation(seed: int, mixed_picker) -> None:
    net = zoo.random_network(seed, pick=mixed_picker)
    x = np.random.default_rng(seed).integers(0, 256, (2,) + net.input.shape)
    _assert_same(net, x)


def test_padding_uses_input_zero_point_through_the_multiplier() -> None:
    w = np.array([[[[5]]], [[[-7]]]], np.int8)
    for spec in ("marlin:255", "deploytest:1"):
        m = hwlib.get(spec)
        assert m(np.array(200), np.array(5)) != 0 and m(np.array(200), w.ravel()).any()
        net = deploy.Network((_input((1, 2, 2), 200),
                              Conv(name="c", input="x", weight=w, bias=[11, -3], multiplier=spec,
                                   padding=(1, 0, 2, 0), requant=None)))
        x = np.zeros((1, 1, 2, 2), np.uint8)
        acc = deploy.run(net, x)["c"]
        assert acc.shape == (1, 2, 3, 4)
        # Row 0 and columns 0..1 are pure padding: bias + m(zp, w), not bias + m(0, w).
        for co, bias in enumerate((11, -3)):
            pad_value = 11 if co == 0 else -3
            pad_value += int(m(np.array(200), np.array(int(w[co, 0, 0, 0]))))
            assert acc[0, co, 0].tolist() == [pad_value] * 4
            assert acc[0, co, 1:, :2].tolist() == [[pad_value] * 2] * 2
            inside = bias + int(m(np.array(0), np.array(int(w[co, 0, 0, 0]))))
            assert acc[0, co, 1:, 2:].tolist() == [[inside] * 2] * 2
        _assert_same(net, np.random.default_rng(0).integers(0, 256, (3, 1, 2, 2)))


@pytest.mark.parametrize("x, w, level, expected", [
    (100, 100, 15, 10012), (1, 1, 255, 252), (3, -3, 3, -12), (17, -1, 4, -17), (0, 77, 255, 0)])
def test_marlin_vectors_through_a_linear_layer(x: int, w: int, level: int, expected: int) -> None:
    net = deploy.Network((_input((1, 1, 1)), Flatten(name="f", input="x"),
                          Linear(name="fc", input="f", weight=[[w]], bias=[0],
                                 multiplier=f"marlin:{level}", requant=None)))
    assert deploy.run(net, np.full((1, 1, 1, 1), x))["fc"].tolist() == [[expected]]


def test_requantize_known_values() -> None:
    acc = np.array([[1000, -3, -5, 2**31 - 1, -(2**31)]])
    out = requantize(acc, mult=np.array([3, 1, 1, 2**31 - 1, 2**31 - 1]),
                     shift=np.array([4, 1, 1, 62, 62]), zp_out=10, lo=0, hi=255)
    # (3000 + 8) >> 4 = 188 -> 198 -> clip 255; (-3 + 1) >> 1 = -1 -> 9; (-5 + 1) >> 1 = -2 -> 8;
    # (2^31-1)^2 + 2^61 >> 62 = 1 -> 11; (-2^31)(2^31-1) + 2^61 >> 62 = -1 -> 9.
    assert out.tolist() == [[198, 9, 8, 11, 9]]
    assert out.dtype == np.uint8


def test_run_refuses_bad_input() -> None:
    net = zoo.lenet5(0)
    with pytest.raises(deploy.IRError, match=r"expected shape \(N, 1, 32, 32\), got \(1, 32, 32\)"):
        deploy.run(net, np.zeros((1, 32, 32), np.uint8))
    with pytest.raises(deploy.IRError, match=r"expected values in 0..255, got \[256, 256\]"):
        deploy.run(net, np.full((1, 1, 32, 32), 256))
    with pytest.raises(deploy.IRError, match="expected integers, got dtype float64"):
        deploy.run(net, np.zeros((1, 1, 32, 32)))


@st.composite
def conv_geometries(draw):
    """One padded, strided, grouped conv on a MARLIN level or the test table multiplier."""
    groups = draw(st.integers(1, 3))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad = tuple(draw(st.integers(0, 3)) for _ in range(4))
    h = draw(st.integers(max(1, kh - pad[0] - pad[1]), 6))
    w = draw(st.integers(max(1, kw - pad[2] - pad[3]), 6))
    spec = draw(st.sampled_from(["deploytest:0", "exact"]) | st.integers(0, 255).map(
        lambda v: f"marlin:{v}"))
    weight = np.array(draw(st.lists(st.integers(-128, 127), min_size=cout * (cin // groups) * kh
                                    * kw, max_size=cout * (cin // groups) * kh * kw)), np.int8)
    return deploy.Network((
        _input((cin, h, w), draw(st.integers(0, 255))),
        Conv(name="c", input="x", weight=weight.reshape(cout, cin // groups, kh, kw),
             bias=draw(st.lists(st.integers(-10**6, 10**6), min_size=cout, max_size=cout)),
             multiplier=spec, stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
             padding=pad, groups=groups, requant=None)))


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(net=conv_geometries(), seed=st.integers(0, 2**16))
def test_conv_geometries_match_slow_implementation(net: deploy.Network, seed: int) -> None:
    _assert_same(net, np.random.default_rng(seed).integers(0, 256, (2,) + net.input.shape))
