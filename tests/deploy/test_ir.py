"""The IR: node validation, whole-network checks, JSON/npz round trip, multiplier re-assignment."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import deploy
from deploy import zoo
from deploy.errors import AssignmentError, IRError
from deploy.ir import Conv, Input, Linear, Requant


def _input(shape, scale=1.0, zero_point=0, mean=None, std=None) -> Input:
    return Input(name="x", shape=shape, scale=scale, zero_point=zero_point, mean=mean, std=std)


def _conv(name, src, weight, bias, **kw) -> Conv:
    return Conv(name=name, input=src, weight=weight, bias=bias, **{"multiplier": "exact",
                                                                    "requant": None, **kw})


def _tiny(multiplier: str = "marlin:3", bias: int = 0, cin: int = 2) -> deploy.Network:
    return deploy.Network((
        Input(name="x", shape=(cin, 4, 4), scale=0.1, zero_point=7, mean=None, std=None),
        Conv(name="c", input="x", weight=np.ones((3, cin, 3, 3), np.int8), bias=np.full(3, bias),
             multiplier=multiplier, padding=1, requant=Requant([1 << 10] * 3, [12] * 3)),
        deploy.Flatten(name="f", input="c"),
        Linear(name="fc", input="f", weight=np.ones((2, 48), np.int8), bias=[0, 0],
               multiplier="exact", requant=None),
    ), name="tiny")


def test_infers_shapes_dtypes_and_zero_points() -> None:
    net = _tiny()
    assert net.infos["c"] == deploy.TensorInfo((3, 4, 4), "uint8", 0, 0, 255)
    assert net.infos["f"].shape == (48,)
    assert net.infos["fc"].dtype == "int32"
    assert net.infos["x"].zero_point == 7
    assert [n.name for n in net.layers] == ["c", "fc"]
    assert net.multipliers() == {"c": "marlin:3", "fc": "exact"}


@pytest.mark.parametrize("make, message", [
    (lambda: Requant([0], [3]), "field 'mult' expected values in [1, 2147483647], got 0"),
    (lambda: Requant([5], [63]), "field 'shift' expected values in [1, 62], got 63"),
    (lambda: Requant([5, 6], [3]), "expected the same length"),
    (lambda: _input((0, 4, 4)), "node 'x' (input): field 'shape' expected an integer in "
                                    "[1, 65535], got 0"),
    (lambda: _input((1, 4, 4), scale=float("nan")), "field 'scale'"),
    (lambda: _input((1, 4, 4), zero_point=256), "field 'zero_point'"),
    (lambda: _input((2, 4, 4), mean=(0.5,), std=(1.0, 1.0)),
     "field 'mean' expected 2 numbers (one per input channel), got (0.5,)"),
    (lambda: _input((1, 4, 4), mean=(0.5,), std=(0.0,)), "field 'std' expected finite numbers > 0"),
    (lambda: _input((1, 4, 4), mean=(0.5,)), "fields 'mean' and 'std' expected both or neither"),
    (lambda: _input((1, 4, 4), mean=("a",), std=(1.0,)), "field 'mean' expected 1 numbers"),
    (lambda: _input((1, 4, 4), mean=np.array([np.inf]), std=(1.0,)),
     "field 'mean' expected finite numbers, got inf"),
    (lambda: _conv("c", "x", np.zeros((2, 1, 3, 3), np.int16) + 200, [0, 0]),
     "node 'c' (conv): field 'weight' expected values in [-128, 127], got 200"),
    (lambda: _conv("c", "x", np.zeros((2, 1, 3, 3), np.int8), [0]),
     "node 'c' (conv): field 'bias' expected shape (2,)"),
    (lambda: _conv("c", "x", np.zeros((3, 1, 3, 3), np.int8), [0] * 3, groups=2),
     "field 'groups' (2) expected to divide the 3 output channels"),
    (lambda: _conv("c", "x", np.zeros((2, 1, 3, 3), np.int8), [0, 0],
                   requant=Requant([1] * 3, [1] * 3)), "field 'requant' expected 2 channels"),
    (lambda: deploy.MaxPool(name="p", input="x", kernel=2, stride=2, padding=2),
     "node 'p' (maxpool): field 'padding' (2, 2, 2, 2) expected each side below the kernel"),
    (lambda: deploy.Add(name="a", a="x", b="y", mult_a=1, mult_b=1, shift=0, zp_a=0, zp_b=0),
     "node 'a' (add): field 'shift'"),
])
def test_node_checks_name_node_and_field(make, message) -> None:
    with pytest.raises(IRError) as e:
        make()
    assert message in str(e.value)


def test_network_checks() -> None:
    x = _input((1, 4, 4))
    w = np.ones((1, 1, 3, 3), np.int8)
    with pytest.raises(IRError, match="expected exactly one Input node, first"):
        deploy.Network((_conv("c", "x", w, [0]),))
    with pytest.raises(IRError, match="input 'y' is not a node defined before it"):
        deploy.Network((x, _conv("c", "y", w, [0])))
    with pytest.raises(IRError, match="node name 'x' used twice"):
        deploy.Network((x, deploy.MaxPool(name="x", input="x", kernel=2, stride=2)))
    with pytest.raises(IRError, match="weight expects 1 x 1 groups = 1 input channels, got 2"):
        deploy.Network((_input((2, 4, 4)), _conv("c", "x", w, [0])))
    with pytest.raises(IRError, match="kernel 5 larger than the padded input height 4"):
        deploy.Network((x, _conv("c", "x", np.ones((1, 1, 5, 5), np.int8), [0])))
    with pytest.raises(IRError, match="expected a uint8 input of rank 3, got int32"):
        deploy.Network((x, _conv("c", "x", w, [0]), _conv("d", "c", w, [0])))
    with pytest.raises(IRError, match="expected an int32 input"):
        deploy.Network((x, deploy.Requantize(name="r", input="x", requant=Requant([1], [1]))))
    with pytest.raises(IRError, match="schema_version 4 is not supported"):
        deploy.Network((x,), schema_version=4)
    with pytest.raises(IRError, match="'marlin:256' is not usable"):
        _tiny("marlin:256")


def test_accumulator_bound_refused() -> None:
    # max|m| over uint8 x int8 for the exact multiplier is 255 * 128 = 32640; fan_in 18.
    limit = 2**31 - 1 - 18 * 32640
    _tiny("exact", bias=limit)
    with pytest.raises(IRError, match=r"worst-case accumulator \|bias\| 2146896128 \+ fan_in 18 "
                                      r"\* max\|m\(x, w\)\| 32640 of 'exact' = 2147483648 "
                                      r"exceeds int32"):
        _tiny("exact", bias=limit + 1)
    big = np.ones((1, 70000), np.int8)
    with pytest.raises(IRError, match="fan_in 70000"):
        deploy.Network((_input((7000, 10, 1)), deploy.Flatten(name="f", input="x"),
                        Linear(name="fc", input="f", weight=big, bias=[0],
                               multiplier="marlin:255", requant=None)))


def test_round_trip_is_identical(tmp_path) -> None:
    for net in (zoo.lenet5(1), zoo.resnet8(2), zoo.random_network(3), _tiny()):
        path = deploy.save(net, tmp_path / net.name)
        assert path.name == "network.json"
        back = deploy.load(tmp_path / net.name)
        assert back == net
        assert back.infos == net.infos
        for a, b in zip(net.nodes, back.nodes):
            assert type(a) is type(b)
        x = np.random.default_rng(0).integers(0, 256, (2,) + net.input.shape)
        ra, rb = deploy.run(net, x), deploy.run(back, x)
        assert all(np.array_equal(ra[k], rb[k]) for k in ra)
    assert zoo.lenet5(1) != zoo.lenet5(2)


def test_load_refuses_mismatched_tensor_file(tmp_path) -> None:
    deploy.save(_tiny(), tmp_path / "a")
    deploy.save(_tiny("marlin:5", bias=3), tmp_path / "b")
    (tmp_path / "a" / "network.npz").write_bytes((tmp_path / "b" / "network.npz").read_bytes())
    with pytest.raises(IRError, match="SHA-256 does not match"):
        deploy.load(tmp_path / "a")
    doc = json.loads((tmp_path / "b" / "network.json").read_text())
    doc["nodes"][1]["op"] = "conv3d"
    (tmp_path / "b" / "network.json").write_text(json.dumps(doc))
    with pytest.raises(IRError, match="unknown op 'conv3d'"):
        deploy.load(tmp_path / "b")


def test_with_multipliers() -> None:
    net = zoo.lenet5(0)
    names = [n.name for n in net.layers]
    assert names == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    new = deploy.with_multipliers(net, {n: f"marlin:{i * 40}" for i, n in enumerate(names)})
    assert new.multipliers() == {n: f"marlin:{i * 40}" for i, n in enumerate(names)}
    assert net.multipliers() != new.multipliers()          # the original is untouched
    seq = deploy.with_multipliers(net, [f"marlin:{i * 40}" for i in range(5)])
    assert seq == new
    assert np.array_equal(new.node("conv2").weight, net.node("conv2").weight)
    with pytest.raises(AssignmentError, match=r"missing \['fc3'\], unknown \['fc4'\]"):
        deploy.with_multipliers(net, {**{n: "exact" for n in names[:4]}, "fc4": "exact"})
    with pytest.raises(AssignmentError, match="expected 5 multipliers .* got 4"):
        deploy.with_multipliers(net, ["exact"] * 4)
    with pytest.raises(AssignmentError, match="multiplier for layer 'conv2'.*'marlin:256'"):
        deploy.with_multipliers(net, ["exact", "marlin:256", "exact", "exact", "exact"])
    with pytest.raises(AssignmentError, match="expected a spec string .* got 17"):
        deploy.with_multipliers(net, ["exact", 17, "exact", "exact", "exact"])


def test_read_assignment(tmp_path) -> None:
    p = tmp_path / "assignment.json"
    p.write_text(json.dumps({"layers": [{"name": "c", "multiplier": "marlin:17", "sigma": 0.1},
                                        {"name": "fc", "multiplier": "exact"}]}))
    net = deploy.with_multipliers(_tiny(), deploy.read_assignment(p))
    assert net.multipliers() == {"c": "marlin:17", "fc": "exact"}
    p.write_text(json.dumps({"layers": [{"name": "c"}]}))
    with pytest.raises(AssignmentError,
                       match=r"layers\[0\] expected 'name' and either 'multiplier'"):
        deploy.read_assignment(p)


def test_non_approximable_layer_keeps_its_multiplier() -> None:
    net = _tiny("marlin:3")
    fixed = deploy.Network(tuple(dataclasses.replace(n, approximable=False) if n.name == "c"
                                 else n for n in net.nodes), name="fixed")
    assert [n.name for n in fixed.layers] == ["fc"]
    assert fixed.multipliers() == {"fc": "exact"}
    new = deploy.with_multipliers(fixed, {"fc": "marlin:9"})
    assert new.node("c").multiplier == "marlin:3" and new.node("fc").multiplier == "marlin:9"
    with pytest.raises(AssignmentError, match=r"unknown \['c'\]"):
        deploy.with_multipliers(fixed, {"fc": "exact", "c": "exact"})
    with pytest.raises(IRError, match="field 'approximable' expected a bool, got 'no'"):
        dataclasses.replace(net.node("c"), approximable="no")


def test_add_zero_points_must_match_its_inputs() -> None:
    x = _input((1, 2, 2), zero_point=9)
    with pytest.raises(IRError, match=r"node 'a': fields 'zp_a', 'zp_b' \(0, 9\) expected the "
                                      r"zero points of 'x' and 'x' \(9, 9\)"):
        deploy.Network((x, deploy.Add(name="a", a="x", b="x", mult_a=1, mult_b=1, shift=1,
                                      zp_a=0, zp_b=9)))
    net = deploy.Network((x, deploy.Add(name="a", a="x", b="x", mult_a=3, mult_b=1, shift=2,
                                        zp_a=9, zp_b=9, zp_out=100, lo=90, hi=120)))
    assert net.infos["a"] == deploy.TensorInfo((1, 2, 2), "uint8", 100, 90, 120)
    out = deploy.run(net, np.array([[[[0, 9], [30, 255]]]]))["a"]
    # ((v-9)*3 + (v-9) + 2) >> 2 = v - 9 (+ rounding), + 100, clipped to 90..120.
    assert out.tolist() == [[[[91, 100], [120, 120]]]]


def test_pooling_window_sum_must_fit_int32() -> None:
    rq = Requant([1], [1])
    deploy.Network((_input((1, 2900, 2900)),
                    deploy.GlobalAvgPool(name="g", input="x", requant=rq)))
    with pytest.raises(IRError, match=r"node 'g': window sum of 8456464 values up to 255 exceeds "
                                      r"int32"):
        deploy.Network((_input((1, 2908, 2908)),
                        deploy.GlobalAvgPool(name="g", input="x", requant=rq)))
