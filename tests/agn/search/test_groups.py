"""The filter-granularity search space: three genes per layer, decoded to ranked channel groups."""
from __future__ import annotations

import numpy as np
import pytest

from agn.search.groups import GroupedSpace
from agn.search.space import SearchSpace, SearchSpaceError
from hwlib.assignment import Assignment
from hwlib.blocks import Block, from_channel_specs

CAT = "marlin:0,marlin:40,marlin:120,marlin:255"


def _space() -> GroupedSpace:
    return GroupedSpace.build_grouped(["a", "b"], [1000, 3000], CAT,
                                      order=[(2, 0, 1, 3), (1, 0)], group=2)


def test_genes_decode_to_ranked_groups_and_energy():
    sp = _space()
    assert sp.n_var == 6 and sp.upper == 3
    hi, lo = sp.candidates.index("marlin:0"), sp.candidates.index("marlin:255")
    # layer a: share 2/3 of 4 groups -> 3 least sensitive groups (2, 0, 1) tolerant
    got = sp.decode([hi, lo, 2, hi, hi, 3])
    assert got["a"] == from_channel_specs(["marlin:255", "marlin:255", "marlin:255",
                                           "marlin:0"], 2)
    assert got["b"] == "marlin:0"  # one multiplier for all its groups: layer-wise
    flat = SearchSpace.build(["a", "b"], [1000, 3000], CAT)
    p = dict(zip(flat.candidates, flat.relative_power))
    want = (1000 * (0.75 * p["marlin:255"] + 0.25 * p["marlin:0"]) + 3000 * p["marlin:0"]) / 4000
    assert sp.energy([hi, lo, 2, hi, hi, 3]) == pytest.approx(want)
    asg = sp.assignment([hi, lo, 2, hi, hi, 3], rule="test")
    assert asg.layers[0].groups == got["a"] and asg.layers[1].multiplier == "marlin:0"
    assert asg.details["granularity"] == "filter" and asg.energy == pytest.approx(want)
    with pytest.raises(SearchSpaceError, match="expected 6 genes \\(sensitive, tolerant"):
        sp.check([0, 0])


def test_encode_round_trips_layer_wise_and_ranked_assignments():
    sp = _space()
    g = np.array([sp.candidates.index("marlin:40"), sp.candidates.index("marlin:120"), 1,
                  1, 1, 0])
    np.testing.assert_array_equal(sp.encode(sp.assignment(g, rule="t")), g)
    layer_wise = Assignment.from_mapping({"a": "marlin:120", "b": "marlin:40"})
    i = sp.candidates.index
    np.testing.assert_array_equal(sp.encode(layer_wise),
                                  [i("marlin:120"), i("marlin:120"), 0, i("marlin:40"),
                                   i("marlin:40"), 0])
    np.testing.assert_array_equal(sp.uniform(2), [2, 2, 0, 2, 2, 0])
    with pytest.raises(SearchSpaceError, match="outside the catalog"):
        sp.encode({"a": (Block(out=(0, 8), multiplier="marlin:7"),), "b": "marlin:0"})
    with pytest.raises(SearchSpaceError, match="not a permutation"):
        GroupedSpace.build_grouped(["a"], [1], CAT, order=[(0, 0)])


def _kernel_space() -> GroupedSpace:
    # layer a: 2 output groups x 3 input groups (blocks o * 3 + g); layer b: 1 x 2
    return GroupedSpace.build_grouped(["a", "b"], [1200, 600], CAT,
                                      order=[(4, 0, 5, 1, 2, 3), (1, 0)], group=2, in_group=4,
                                      in_channels=[12, 8])


def test_kernel_genes_decode_to_ranked_blocks_across_filters():
    sp = _kernel_space()
    i = sp.candidates.index
    hi, lo = i("marlin:0"), i("marlin:255")
    got = sp.decode([hi, lo, 2, lo, lo, 0])                 # a: 4 of 6 blocks tolerant
    tolerant = {(4, 8), (0, 4)}
    assert got["a"] == tuple(
        Block(out=(o * 2, o * 2 + 2), inp=(g * 4, g * 4 + 4),
              multiplier="marlin:255" if (o * 3 + g) in (4, 0, 5, 1) else "marlin:0")
        for o in range(2) for g in range(3))
    assert {b.inp for b in got["a"] if b.out == (0, 2) and b.multiplier == "marlin:255"} \
        == tolerant                                          # filter 0 mixes two multipliers
    assert got["b"] == "marlin:255"
    asg = sp.assignment([hi, lo, 2, lo, lo, 0], rule="t")
    assert asg.details == {"granularity": "kernel", "group": 2, "in_group": 4}
    asg.layers[0].check_shape(4, 12)
    p = dict(zip(sp.candidates, sp.relative_power))
    want = (1200 * (4 * p["marlin:255"] + 2 * p["marlin:0"]) / 6 + 600 * p["marlin:255"]) / 1800
    assert sp.energy([hi, lo, 2, lo, lo, 0]) == pytest.approx(want)
    assert sp.identity()["in_channels"] == [12, 8]
    with pytest.raises(SearchSpaceError, match="input channels per layer"):
        GroupedSpace.build_grouped(["a"], [1], CAT, order=[(0, 1, 2)], group=1, in_group=2,
                                   in_channels=[4])
    one = GroupedSpace.build_grouped(["a"], [1], CAT, order=[(1, 0)], group=1, in_group=4,
                                     in_channels=[1])        # one input channel: blocks of 1
    assert one.decode([0, 3, 2])["a"][0].inp == (0, 1)


def test_kernel_space_encodes_layer_wise_seeds_exactly_and_its_own_points():
    sp = _kernel_space()
    i = sp.candidates.index
    layer_wise = Assignment.from_mapping({"a": "marlin:40", "b": "marlin:120"})
    g = sp.encode(layer_wise)
    np.testing.assert_array_equal(g, [i("marlin:40"), i("marlin:40"), 0, i("marlin:120"),
                                      i("marlin:120"), 0])
    assert sp.decode(g) == layer_wise.specs()
    point = np.array([i("marlin:40"), i("marlin:255"), 1, i("marlin:0"), i("marlin:120"), 2])
    np.testing.assert_array_equal(sp.encode(sp.assignment(point, rule="t")), point)
    # a filter-granularity assignment encodes to a point of the space (its ranked endpoints)
    filt = {"a": from_channel_specs(["marlin:40", "marlin:255"], 2), "b": "marlin:0"}
    assert sp.encode(filt).tolist() == [i("marlin:255"), i("marlin:255"), 0, i("marlin:0"),
                                        i("marlin:0"), 0]
