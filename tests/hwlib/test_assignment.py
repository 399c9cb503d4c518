"""The one Assignment: versioned file, round trips, the name check, and migration of the files
earlier versions wrote (literal copies of them below)."""
import json

import pytest

import hwlib
from hwlib import (
    Assignment,
    AssignmentError,
    LayerAssignment,
    as_assignment,
    check_names,
    read_assignment,
    read_assignments,
    write_assignment,
    write_assignments,
)

# assignment.json as the error model wrote it before the format had a version
OLD_MATCHED = """{
  "family": "marlin:*",
  "rule": "cheapest",
  "metric": "std",
  "energy": 0.6925941479419542,
  "power_source": "MARLIN UMC 65 nm post-synthesis, 500 MHz",
  "layers": [
    {
      "name": "features.0",
      "multiplier": "marlin:127",
      "sigma": 0.03067135438323021,
      "tolerance": 880.4675103595147,
      "predicted_std": 824.3914134087277,
      "predicted_mean": -931.4114583333328,
      "relative_power": 0.7587265639317781,
      "multiplications": 9600
    },
    {
      "name": "features.4",
      "multiplier": "marlin:255",
      "sigma": 0.18103618919849396,
      "tolerance": 5061.458267478974,
      "predicted_std": 2578.7213657244893,
      "predicted_mean": -8701.210071614585,
      "relative_power": 0.6814560568278786,
      "multiplications": 38400
    }
  ]
}
"""

# chosen_assignment.json as the search stage wrote it before
OLD_CHOSEN = """{
  "energy": 0.6814560568278786,
  "accuracy": 0.9791666666666666,
  "genome": [
    255,
    255
  ],
  "exact_accuracy": 0.9583333333333334,
  "max_loss": 0.01,
  "layers": [
    {
      "name": "features.0",
      "multiplier": "marlin:255"
    },
    {
      "name": "features.4",
      "multiplier": "marlin:255"
    }
  ]
}
"""

# search/seeds.json as the match stage wrote it before: sigma scale -> {layer: spec}
OLD_SEEDS = """{
  "0.25": {
    "features.0": "marlin:31",
    "features.4": "marlin:127"
  },
  "2.0": {
    "features.0": "marlin:127",
    "features.4": "marlin:255"
  }
}
"""


def _rich() -> Assignment:
    return Assignment(
        catalog="marlin:*", rule="cheapest", metric="std", energy=0.5, power_source="p",
        details={"note": [1, 2]},
        layers=(LayerAssignment(name="a", multiplier="marlin:3", sigma=0.1, tolerance=2.0,
                                predicted_std=1.5, predicted_mean=-0.5, relative_power=0.9,
                                multiplications=100),
                LayerAssignment(name="b", multiplier="exact", multiplications=7)))


def test_round_trip_and_versioned_shape(tmp_path):
    a = _rich()
    path = write_assignment(tmp_path, a)
    assert path == tmp_path / "assignment.json"
    obj = json.loads(path.read_text())
    assert list(obj) == ["version", "catalog", "rule", "metric", "energy", "power_source",
                         "details", "layers"]
    assert obj["version"] == 1 and obj["layers"][1] == {"name": "b", "multiplier": "exact",
                                                         "multiplications": 7}
    assert read_assignment(tmp_path) == a
    assert read_assignment(path).to_json() == obj
    minimal = Assignment.from_mapping({"a": "exact"})
    assert minimal.to_json() == {"version": 1, "layers": [{"name": "a", "multiplier": "exact"}]}
    assert read_assignment(write_assignment(tmp_path / "m.json", minimal)) == minimal


def test_old_assignment_json_migrates(tmp_path):
    p = tmp_path / "assignment.json"
    p.write_text(OLD_MATCHED)
    a = read_assignment(p)
    assert (a.catalog, a.rule, a.metric) == ("marlin:*", "cheapest", "std")
    assert a.energy == 0.6925941479419542 and a.power_source.startswith("MARLIN UMC 65 nm")
    assert a.specs() == {"features.0": "marlin:127", "features.4": "marlin:255"}
    first = a.layers[0]
    assert (first.sigma, first.tolerance, first.predicted_std, first.predicted_mean,
            first.relative_power, first.multiplications) == (
        0.03067135438323021, 880.4675103595147, 824.3914134087277, -931.4114583333328,
        0.7587265639317781, 9600)
    assert a.details == {}
    old = json.loads(OLD_MATCHED)
    new = a.to_json()
    assert new["catalog"] == old["family"] and new["layers"] == old["layers"]
    assert {k: v for k, v in new.items() if k not in ("version", "catalog")} == \
        {k: v for k, v in old.items() if k != "family"}
    assert read_assignment(write_assignment(tmp_path / "new.json", a)) == a


def test_old_chosen_assignment_json_migrates_and_loads_like_assignment_json(tmp_path):
    p = tmp_path / "chosen_assignment.json"
    p.write_text(OLD_CHOSEN)
    a = read_assignment(p)
    assert a.energy == 0.6814560568278786 and a.specs() == {"features.0": "marlin:255",
                                                            "features.4": "marlin:255"}
    assert a.details == {"accuracy": 0.9791666666666666, "genome": [255, 255],
                         "exact_accuracy": 0.9583333333333334, "max_loss": 0.01}
    assert a.catalog is None and a.layers[0].multiplications is None
    assert read_assignment(write_assignment(p, a)) == a


def test_old_seeds_json_migrates_to_an_assignment_set(tmp_path):
    p = tmp_path / "seeds.json"
    p.write_text(OLD_SEEDS)
    seeds = read_assignments(p)
    assert [s.details for s in seeds] == [{"sigma_scale": 0.25}, {"sigma_scale": 2.0}]
    assert [s.specs() for s in seeds] == list(json.loads(OLD_SEEDS).values())
    with pytest.raises(AssignmentError, match="holds 2 assignments, expected one"):
        read_assignment(p)
    write_assignments(p, seeds)
    obj = json.loads(p.read_text())
    assert list(obj) == ["version", "assignments"] and "version" not in obj["assignments"][0]
    assert read_assignments(p) == seeds
    assert read_assignments(write_assignment(tmp_path / "one.json", seeds[0])) == [seeds[0]]


def test_plain_mapping_file_and_values():
    assert as_assignment({"a": "marlin:3", "b": hwlib.get("exact")}).specs() == \
        {"a": "marlin:3", "b": "exact"}
    decoded = {"layers": [{"name": "a", "multiplier": "marlin:3"}]}
    assert as_assignment(decoded).specs() == {"a": "marlin:3"}
    a = _rich()
    assert as_assignment(a) is a
    with pytest.raises(AssignmentError, match="multiplier for layer 'a': expected a spec string"):
        as_assignment({"a": 17})
    with pytest.raises(AssignmentError, match="expected an Assignment, a path or a mapping"):
        as_assignment(3)  # type: ignore[arg-type]


def test_the_reader_refuses_unknown_shapes_with_clear_messages(tmp_path):
    p = tmp_path / "a.json"

    def refused(obj, match):
        p.write_text(json.dumps(obj))
        with pytest.raises(AssignmentError, match=match):
            read_assignment(p)

    grouped = {"name": "conv1", "groups": [{"out": [0, 8], "multiplier": "marlin:3"}]}
    refused({"version": 1, "layers": [grouped]},
            r"layers\[0\] \('conv1'\) holds 'groups' \(one multiplier per channel group\), "
            r"which format version 2 added; this file says version 1")
    refused({"version": 1, "layers": [{"name": "a", "multiplier": "exact", "bits": 3}]},
            r"layer 'a' has unknown keys \['bits'\]")
    refused({"version": 1, "owner": "x", "layers": [{"name": "a", "multiplier": "exact"}]},
            r"unknown keys \['owner'\]")
    refused({"version": 3, "layers": []}, "version 3 is not one this reader knows")
    refused({"version": 1, "layers": [{"name": "a", "multiplier": "exact"}] * 2},
            "layer 'a' is assigned twice")
    refused({"version": 1, "layers": [{"name": "a", "multiplier": "exact", "sigma": "x"}]},
            r"layer 'a' sigma='x', expected a number")
    refused({"version": 1, "layers": [{"name": "a", "multiplier": "exact",
                                       "multiplications": -1}]},
            "multiplications=-1, expected an integer >= 0")
    refused({"version": 1, "details": [1], "layers": [{"name": "a", "multiplier": "exact"}]},
            "details expected a JSON object")
    refused({"version": 1, "assignments": []}, "non-empty list 'assignments'")
    refused([1, 2], "expected a JSON object, got list")
    refused({"a": 1}, "expected an assignment")


def test_one_name_check_lists_missing_and_unknown():
    with pytest.raises(AssignmentError) as err:
        check_names(["a", "x"], ["a", "b"], "assignment for network 'n'")
    msg = str(err.value)
    assert msg.startswith("assignment for network 'n': expected exactly its 2 approximable layers")
    assert "missing ['b'], unknown ['x']" in msg
    _rich().check_names(["a", "b"])
    with pytest.raises(AssignmentError, match=r"missing \['c'\], unknown \[\]"):
        _rich().check_names(["a", "b", "c"])


def test_multipliers_resolve_every_spec_naming_a_bad_one():
    assert _rich().multipliers()["a"] is hwlib.get("marlin:3")
    with pytest.raises(AssignmentError, match="multiplier for layer 'b'.*marlin:256"):
        Assignment.from_mapping({"a": "exact", "b": "marlin:256"}).multipliers()
