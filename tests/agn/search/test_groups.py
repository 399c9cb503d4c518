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
