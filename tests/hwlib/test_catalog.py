"""The one Catalog: members with exact present, order by power, MARLIN's reconfigurable levels,
the common activation range, one power-label format and the one energy function."""
import numpy as np
import pytest

import hwlib
from hwlib import Assignment, AssignmentError, Catalog, LayerAssignment, SpecError


def test_exact_is_present_once_and_members_keep_their_order():
    marlin = Catalog.build("marlin:*")
    assert marlin.specs == tuple(f"marlin:{lv}" for lv in range(256))  # marlin:0 is exact
    assert marlin.exact.spec == "marlin:0" and marlin.exact_index == 0
    perf = Catalog.build("perf:*")
    assert perf.specs == (*(m.spec for m in hwlib.catalog("perf:*")), "exact")
    assert perf.exact_index == len(perf) - 1
    listed = Catalog.build(["marlin:3", hwlib.get("marlin:3"), "marlin:0", "exact"])
    assert listed.specs == ("marlin:3", "marlin:0", "exact")  # a spec named twice kept once
    assert Catalog.build(listed) is listed
    assert "marlin:3" in listed and "marlin:4" not in listed and 3 not in listed
    with pytest.raises(SpecError, match="names no multiplier"):
        Catalog.build([])
    with pytest.raises(SpecError, match="unknown family 'nosuch'"):
        Catalog.build("nosuch:1")


def test_order_by_power_is_decreasing_power_then_spec():
    for spec in ("marlin:*", "evo:mul8s_*", "perf:*", "bam:*,marlin:1,exact"):
        cat = Catalog.build(spec)
        expected = sorted(cat.members, key=lambda m: (-m.relative_power, m.spec))
        assert list(cat.by_power) == expected
        powers = [m.relative_power for m in cat.by_power]
        assert powers == sorted(powers, reverse=True)


def test_only_marlins_256_levels_are_reconfigurable():
    marlin = Catalog.build("marlin:*")
    assert marlin.is_reconfigurable
    assert [m.spec for m in marlin.levels] == [f"marlin:{lv}" for lv in range(256)]
    backwards = Catalog.build([f"marlin:{lv}" for lv in reversed(range(256))])
    assert backwards.is_reconfigurable and backwards.levels == marlin.levels
    for spec in ("marlin:1,marlin:2", "marlin:*,exact", "evo:mul8s_*"):
        assert not Catalog.build(spec).is_reconfigurable
    with pytest.raises(SpecError, match="not reconfigurable.*'marlin:\\*'"):
        _ = Catalog.build("marlin:1,marlin:2").levels


def test_activation_range_is_what_every_member_accepts():
    assert Catalog.build("marlin:*").activation_range == (0, 255)
    assert Catalog.build("evo:mul8s_*").activation_range == (0, 127)
    assert Catalog.build("marlin:*,evo:mul8s_1L2N").activation_range == (0, 127)


def test_one_power_label_format():
    marlin = Catalog.build("marlin:*")
    assert marlin.power_source == hwlib.marlin.POWER_SOURCE
    mixed = Catalog.build("evo:mul8s_1L2N,marlin:1,marlin:0")
    labels = sorted({hwlib.get("evo:mul8s_1L2N").power.label, hwlib.marlin.POWER_SOURCE})
    assert mixed.power_source == "mixed: " + "; ".join(labels)
    assert mixed.power_source_of(["marlin:1", "marlin:1"]) == hwlib.marlin.POWER_SOURCE
    assert mixed.power_sources == tuple(m.power.label for m in mixed.members)
    assert hwlib.power_label([hwlib.get("marlin:1")]) == hwlib.marlin.POWER_SOURCE


def test_energy_is_the_weighted_relative_power_bit_for_bit():
    cat = Catalog.build("marlin:*")
    specs = ["marlin:0", "marlin:255", "marlin:15", "marlin:77"]
    counts = [100, 300, 50, 7]
    c = np.asarray(counts, np.float64)
    p = np.array([hwlib.get(s).relative_power for s in specs], np.float64)
    expected = float((c * p).sum() / c.sum())
    assert cat.energy(specs, counts) == expected
    assert cat.energy([hwlib.get(s) for s in specs], counts) == expected
    assert cat.energy(dict(zip("abcd", specs)), counts) == expected
    asg = Assignment(layers=tuple(LayerAssignment(name=n, multiplier=s, multiplications=k)
                                  for n, s, k in zip("abcd", specs, counts)))
    assert cat.energy(asg) == expected
    assert cat.energy(["marlin:0"] * 4, counts) == 1.0
    with pytest.raises(AssignmentError, match="carry no multiplication counts"):
        cat.energy(Assignment.from_mapping({"a": "marlin:1"}))
    with pytest.raises(AssignmentError, match="'exact' is not in catalog 'marlin:\\*'"):
        cat.energy(["exact"], [1])
    with pytest.raises(AssignmentError, match="positive sum"):
        cat.energy(["marlin:1"], [0])
