"""Networks with block-wise multipliers: schema 3 round trip, torch executor == NumPy reference."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import deploy
from agn.intsim import run_integer
from deploy import zoo
from deploy.errors import AssignmentError, IRError
from hwlib.blocks import Block

SPECS = ["exact", "marlin:5", "marlin:190", "blocktest:1", "blocktest:2"]


def _blocks(rng, cout, cin, kernel_level):
    go = int(rng.choice([d for d in (1, 2, 4) if cout % d == 0]))
    gi = int(rng.choice([d for d in (1, 2, cin) if cin % d == 0])) if kernel_level else cin
    return tuple(Block(out=(o, o + go), inp=(i, i + gi) if kernel_level else None,
                       multiplier=str(rng.choice(SPECS)))
                 for o in range(0, cout, go) for i in range(0, cin, gi))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_block_wise_network_matches_the_reference(tmp_path, seed):
    rng = np.random.default_rng(seed)
    net = zoo.random_network(seed)
    assert json.loads(deploy.save(net, tmp_path / "flat").read_text())["schema_version"] == 2
    asg = {n.name: _blocks(rng, *n.weight.shape[:2], kernel_level=bool(i % 2))
           for i, n in enumerate(net.layers)}
    blocked = deploy.with_multipliers(net, asg)
    path = deploy.save(blocked, tmp_path)
    assert json.loads(path.read_text())["schema_version"] == 3
    again = deploy.load(tmp_path)
    assert again == blocked and again.multipliers() == blocked.multipliers()
    x = rng.integers(0, 256, (3,) + net.input.shape, dtype=np.uint8)
    ref = deploy.run(again, x)
    fast = run_integer(again, x, keep=True)
    for name in ref:
        assert np.array_equal(ref[name].astype(np.int64), fast[name].numpy().astype(np.int64)), \
            f"node {name} differs from the reference"


def test_blocks_that_do_not_fit_the_layer_are_refused():
    net = zoo.random_network(1)
    layer = net.layers[0]
    cout = layer.weight.shape[0]
    wrong = (Block(out=(0, cout + 1), multiplier="exact"),)
    names = {n.name: "exact" for n in net.layers}
    with pytest.raises(AssignmentError, match=f"layer {layer.name!r} groups"):
        deploy.with_multipliers(net, {**names, layer.name: wrong})
    with pytest.raises(IRError, match=r"field 'multiplier'.*\(1, 0\) is assigned 0 times"):
        dataclasses.replace(layer, multiplier=(Block(out=(0, 1), multiplier="exact"),))
