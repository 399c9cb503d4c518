"""Assignment format version 2: a layer holding output-channel groups or (output, input) blocks."""
import json

import numpy as np
import pytest

from hwlib.assignment import (
    Assignment,
    LayerAssignment,
    read_assignment,
    read_assignments,
    write_assignment,
    write_assignments,
)
from hwlib.blocks import (
    Block,
    block_index,
    blocks_per_multiplier,
    check_blocks,
    describe,
    filters_per_multiplier,
    from_channel_specs,
)
from hwlib.errors import AssignmentError

GROUPED = {"name": "conv1", "groups": [{"out": [4, 8], "multiplier": "marlin:3"},
                                       {"out": [0, 4], "multiplier": "marlin:127"}]}


def test_grouped_layer_round_trips_as_version_2(tmp_path):
    asg = Assignment.from_json({"version": 2, "layers": [
        GROUPED, {"name": "fc", "multiplier": "exact"}]})
    g = asg.layers[0]
    assert g.multiplier is None and g.groups[0] == Block(out=(0, 4), multiplier="marlin:127")
    assert asg.grouped and asg.specs()["fc"] == "exact"
    p = write_assignment(tmp_path, asg)
    obj = json.loads(p.read_text())
    assert obj["version"] == 2 and obj["layers"][0]["groups"][1] == GROUPED["groups"][0]
    assert read_assignment(p) == asg
    write_assignments(tmp_path / "s.json", [asg, Assignment.from_mapping({"conv1": "exact",
                                                                         "fc": "exact"})])
    assert json.loads((tmp_path / "s.json").read_text())["version"] == 2
    assert read_assignments(tmp_path / "s.json")[0] == asg


def test_layer_wise_files_stay_version_1(tmp_path):
    asg = Assignment.from_mapping({"a": "marlin:3"})
    assert asg.to_json()["version"] == 1
    write_assignments(tmp_path / "s.json", [asg])
    assert json.loads((tmp_path / "s.json").read_text())["version"] == 1


def test_kernel_blocks_and_mapping_form():
    blocks = [Block(out=(0, 2), inp=(2, 4), multiplier="exact"),
              {"out": [0, 2], "in": [0, 2], "multiplier": "marlin:9"}]
    asg = Assignment.from_mapping({"c": blocks})
    assert [b.inp for b in asg.layers[0].groups] == [(0, 2), (2, 4)]
    assert asg.canonical_specs()["c"][0].multiplier == "marlin:9"
    with pytest.raises(AssignmentError, match="holds groups"):
        asg.multipliers()
    specs, index = block_index(asg.layers[0].groups, 2, 4)
    assert specs == ("marlin:9", "exact") and index.tolist() == [[0, 0, 1, 1]] * 2
    assert filters_per_multiplier(asg.layers[0].groups, 2, 4) == {"marlin:9": 1.0, "exact": 1.0}
    assert filters_per_multiplier(from_channel_specs(["a", "b", "a"], 2), 6) == \
        {"a": 4.0, "b": 2.0}
    three = asg.layers[0].groups + (Block(out=(2, 4), inp=(0, 4), multiplier="exact"),)
    assert blocks_per_multiplier(three) == {"exact": 2, "marlin:9": 1}
    assert describe(asg.layers[0].groups) == \
        "marlin:9 x 1 (1/2 blocks), exact x 1 (1/2 blocks)"
    assert describe(from_channel_specs(["a", "b", "a"], 2)) == "a x 4, b x 2"


@pytest.mark.parametrize(("blocks", "cout", "cin", "match"), [
    ([Block(out=(0, 4), multiplier="exact")], 8, 3, r"\(4, 0\) is assigned 0 times"),
    ([Block(out=(0, 4), multiplier="exact")] * 2, 4, 3, r"\(0, 0\) is assigned 2 times"),
    ([Block(out=(0, 3), multiplier="exact"), Block(out=(3, 8), multiplier="exact")], 8, 1,
     r"'out' group sizes \[3, 5\] expected one size dividing the layer's 8 output"),
    ([Block(out=(0, 3), multiplier="exact")], 4, 1, "expected one size dividing"),
    ([Block(out=(0, 2), multiplier="exact"), Block(out=(2, 4), multiplier="x"),
      Block(out=(4, 6), multiplier="x")], 4, 1, r"range \[4, 6\] expected inside \[0, 4\]"),
    ([Block(out=(0, 2), inp=(0, 3), multiplier="exact")], 2, 4, "'in' group sizes"),
])
def test_check_blocks_refuses_bad_tilings(blocks, cout, cin, match):
    with pytest.raises(AssignmentError, match=match):
        check_blocks(tuple(blocks), cout, cin)


def test_entries_are_refused_with_clear_messages():
    with pytest.raises(AssignmentError, match="either 'multiplier' or 'groups', got both"):
        LayerAssignment(name="a", multiplier="exact", groups=[Block(out=(0, 1),
                                                                    multiplier="exact")])
    with pytest.raises(AssignmentError, match="got neither"):
        LayerAssignment(name="a")
    with pytest.raises(AssignmentError, match="a mix"):
        LayerAssignment(name="a", groups=[Block(out=(0, 1), multiplier="exact"),
                                          Block(out=(1, 2), inp=(0, 1), multiplier="exact")])
    with pytest.raises(AssignmentError, match=r"range \[lo, hi\] with 0 <= lo < hi, got \[2, 2\]"):
        Assignment.from_json({"version": 2, "layers": [
            {"name": "a", "groups": [{"out": [2, 2], "multiplier": "exact"}]}]})
    with pytest.raises(AssignmentError, match=r"unknown keys \['bits'\]"):
        Assignment.from_json({"version": 2, "layers": [
            {"name": "a", "groups": [{"out": [0, 2], "multiplier": "exact", "bits": 1}]}]})
    with pytest.raises(AssignmentError, match="either 'multiplier' .* or 'groups'"):
        Assignment.from_json({"version": 2, "layers": [
            {"name": "a", "multiplier": "exact", "groups": []}]})
    la = Assignment.from_json({"version": 2, "layers": [GROUPED]}).layers[0]
    la.check_shape(8, 3)
    with pytest.raises(AssignmentError, match="layer 'conv1' groups"):
        la.check_shape(16, 3)
    assert np.array_equal(block_index(la.groups, 8, 1)[1].ravel(), [0] * 4 + [1] * 4)
