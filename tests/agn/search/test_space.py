import numpy as np
import pytest

import hwlib
from agn.search import Encoding, SearchSpace, SearchSpaceError


def test_sorted_encoding_orders_by_decreasing_power(space):
    powers = np.array(space.relative_power)
    assert np.all(np.diff(powers) <= 0)
    assert space.candidates[0] == "marlin:0" and space.candidates[-1] == "marlin:255"
    assert space.upper == 255


def test_decode_encode_round_trip_and_energy(space):
    g = np.array([0, 10, 255, 3])
    asg = space.decode(g)
    np.testing.assert_array_equal(space.encode(asg), g)
    c = np.array([4000, 8000, 2000, 500], float)
    p = np.array([hwlib.get(asg[n]).relative_power for n in space.layers])
    assert space.energy(g) == pytest.approx((c * p).sum() / c.sum(), rel=1e-12)
    assert space.energy(space.uniform(0)) == 1.0


def test_raw_encoding_is_the_marlin_level():
    sp = SearchSpace.build(["a", "b"], [1, 1], "marlin:*", Encoding.RAW)
    assert sp.decode([127, 128]) == {"a": "marlin:127", "b": "marlin:128"}


def test_bad_genomes_and_catalogs_are_refused(space):
    with pytest.raises(SearchSpaceError, match="expected 4 genes"):
        space.decode([0, 1, 2])
    with pytest.raises(SearchSpaceError, match=r"0\.\.255"):
        space.decode([0, 1, 2, 256])
    with pytest.raises(hwlib.AssignmentError, match="missing \\['fc'\\]"):
        space.encode({"conv1": "exact", "conv2": "exact", "conv3": "exact"})
    with pytest.raises(SearchSpaceError, match="family .nosuch."):
        SearchSpace.build(["a"], [1], "nosuch:*")
    with pytest.raises(SearchSpaceError, match="needs the catalog 'marlin:\\*'"):
        SearchSpace.build(["a"], [1], "marlin:1,marlin:2", Encoding.RAW)


def test_random_init_over_marlin_levels_keeps_marlins_raw_genome():
    layers, mults = ["a", "b"], [10, 20]
    raw = SearchSpace.for_init(layers, mults, "marlin:*", "random")
    assert raw.encoding is Encoding.RAW
    assert raw.decode([127, 128]) == {"a": "marlin:127", "b": "marlin:128"}
    seeded = SearchSpace.for_init(layers, mults, "marlin:*", "seeded")
    assert seeded.encoding is Encoding.SORTED and seeded.decode([0, 0])["a"] == "marlin:0"
    evo = SearchSpace.for_init(layers, mults, "evo:mul8s_*", "random")
    assert evo.encoding is Encoding.SORTED  # no raw genome outside MARLIN's levels


def test_a_catalog_without_an_exact_member_gets_the_exact_multiplier():
    space = SearchSpace.build(["a"], [1], "perf:*")
    assert space.candidates[0] == "exact" and space.relative_power[0] == 1.0
    assert len(space.candidates) == len(hwlib.catalog("perf:*")) + 1
    assert "exact" not in SearchSpace.build(["a"], [1], "marlin:*").candidates  # marlin:0 is


def test_a_genome_as_an_assignment_round_trips_and_keeps_its_energy(space, tmp_path):
    g = np.array([0, 10, 255, 3])
    asg = space.assignment(g, rule="test", details={"genome": g.tolist()})
    assert asg.specs() == space.decode(g) and asg.energy == space.energy(g)
    assert [x.multiplications for x in asg.layers] == list(space.multiplications)
    assert asg.catalog == "marlin:*" and asg.power_source == space.power_source
    back = hwlib.read_assignment(hwlib.write_assignment(tmp_path / "chosen.json", asg))
    assert back == asg and space.catalog.energy(back) == space.energy(g)
    np.testing.assert_array_equal(space.encode(back), g)
    assert space.exact_gene == 0 and space.candidates[space.exact_gene] == "marlin:0"
