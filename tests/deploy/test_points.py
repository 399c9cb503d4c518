"""Operating points of one integer network: weights stored once, per-point multipliers, biases
and requantisations; the switched firmware matches the reference at every point, bit for bit."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

import deploy
from deploy import zoo
from deploy.ir import _Layer
from deploy.points import PointNetwork, validate_points

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")


def _point(net: deploy.Network, seed: int, specs: list[str]) -> deploy.Network:
    """``net`` with other multipliers and a per-point integer scale and offset per channel."""
    rng = np.random.default_rng(seed)
    net = deploy.with_multipliers(net, specs)
    nodes = []
    for n in net.nodes:
        if isinstance(n, _Layer):
            bias = n.bias.astype(np.int64) + rng.integers(-300, 301, n.bias.shape)
            rq = n.requant
            if rq is not None:
                mult = np.clip(rq.mult * rng.uniform(0.7, 1.0, rq.mult.shape), 1, 2**31 - 1)
                rq = dataclasses.replace(rq, mult=mult.astype(np.int64))
            n = dataclasses.replace(n, bias=bias.astype(np.int32), requant=rq)
        nodes.append(n)
    return deploy.Network(tuple(nodes), name=net.name)


def _points(base: deploy.Network, choices: list[list[str]]) -> PointNetwork:
    nets = [base if i == 0 else _point(base, i, specs) for i, specs in enumerate(choices)]
    if choices[0] != list(base.multipliers().values()):
        nets[0] = deploy.with_multipliers(base, choices[0])
    return PointNetwork.from_networks(nets)


def test_point_network_shares_weights_and_refuses_other_differences():
    base = zoo.lenet5(3)
    n = len(base.layers)
    pts = _points(base, [["marlin:255"] * n, ["marlin:40"] * n, ["marlin:3"] * n])
    assert pts.n_points == 3 and pts.names == ("p0", "p1", "p2")
    assert pts.multipliers(2) == {name: "marlin:3" for name in base.multipliers()}
    for i in range(3):
        net = pts.network_at(i)
        assert all(np.array_equal(a.weight, b.weight) for a, b in zip(net.layers, base.layers))
    mem = pts.memory()
    assert mem["varying_layers"] == [x.name for x in base.nodes if isinstance(x, _Layer)]
    assert mem["bytes_per_extra_point"] == sum(
        9 * x.out_channels + 24 - 5 * x.out_channels * (x.requant is None)
        for x in base.nodes if isinstance(x, _Layer))
    first = base.layers[0]
    other = deploy.Network(tuple(dataclasses.replace(x, weight=-x.weight) if x is first else x
                                 for x in base.nodes), name=base.name)
    with pytest.raises(deploy.IRError, match="field 'weight' differs"):
        PointNetwork.from_networks([base, other])
    with pytest.raises(deploy.IRError, match="expected an index in 0..2"):
        pts.network_at(3)


@needs_gcc
def test_switching_points_in_the_firmware_changes_outputs_as_the_reference_says(tmp_path):
    base = zoo.random_network(5)
    n = len(base.layers)
    rng = np.random.default_rng(0)
    choices = [["marlin:255"] * n, [f"marlin:{v}" for v in rng.integers(0, 256, n)],
               ["marlin:7"] * (n - 1) + ["exact"]]
    pts = _points(base, choices)
    x = rng.integers(0, 256, (2,) + base.input.shape, dtype=np.uint8)
    rep = validate_points(pts, x, tmp_path, sequence=(0, 1, 2, 1, 0))
    assert rep.ok, [(r.point, r.mismatches) for r in rep.runs]
    assert [r.point for r in rep.runs] == [0, 1, 2, 1, 0]
    assert all(r.changed_reference == r.changed_firmware for r in rep.runs)
    assert all(r.changed_reference > 0 for r in rep.runs[1:])   # every switch changes the logits
    src = (tmp_path / "firmware" / "network.c").read_text()
    assert "int net_set_operating_point(uint32_t i)" in src
    layer = (tmp_path / "firmware" / f"layer_{base.layers[0].name}.c").read_text()
    assert layer.count("_weight[") == 1 and "_bias_p2[" in layer and "_csr_pt[3]" in layer
    doc = json.loads((tmp_path / "validation.json").read_text())
    assert doc["ok"] and doc["mismatches"] == 0 and doc["memory"]["bytes_per_extra_point"] > 0


@needs_gcc
def test_points_over_table_multipliers_select_product_functions(tmp_path):
    base = deploy.with_multipliers(zoo.lenet5(8), ["exact"] * len(zoo.lenet5(8).layers))
    n = len(base.layers)
    choices = [["exact"] * n, ["drum:k5"] * n, ["trunc:k3"] * (n - 1) + ["exact"]]
    pts = _points(base, choices)
    x = np.random.default_rng(1).integers(0, 256, (2,) + base.input.shape, dtype=np.uint8)
    rep = validate_points(pts, x, tmp_path)
    assert rep.ok and [r.point for r in rep.runs] == [0, 1, 2, 0]
    assert rep.runs[-1].changed_reference > 0
