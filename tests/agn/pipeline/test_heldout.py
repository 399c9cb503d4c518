"""Fronts re-scored on held-out splits, the choice on the confirmation split, points near chance,
and front points retrained briefly (issue 17)."""
import csv
import json

import pytest

from agn.config import PipelineConfig
from agn.pipeline.context import Context
from agn.pipeline.holdout import Heldout, choose_point, dominated_share
from agn.pipeline.retrain_front import choose_retrained, spread
from agn.pipeline.stages import search_stage


def _held(splits=("confirm", "test")):
    table = {"a": {"confirm": 0.1, "test": 0.2}, "b": {"confirm": 0.5, "test": 0.4}}
    return Heldout(splits=splits, score=lambda a, which: {s: table[a["x"]][s] for s in which},
                   sizes={"train": 10, "search": 5, **{s: 5 for s in splits}}, classes=10)


def test_heldout_columns_near_chance_and_rule():
    held = _held()
    cols = held.columns([{"x": "a"}, {"x": "b"}])
    assert cols["confirm_error"] == [0.1, 0.5] and cols["test_accuracy"] == [0.8, 0.6]
    assert held.choice_split == "confirm" and held.chance == pytest.approx(0.1)
    assert held.near_chance(0.14) and not held.near_chance(0.2)
    assert "confirmation split" in held.rule(0.01) and "1.0 points" in held.rule(0.01)
    no_confirm = _held(("test",))
    assert no_confirm.choice_split == "val" and "confirm_fraction is 0" in no_confirm.rule(0.01)


def test_choice_uses_the_named_split_and_dominance_share():
    front = [{"energy": 0.5, "error": 0.01, "confirm_error": 0.2},
             {"energy": 0.8, "error": 0.02, "confirm_error": 0.03}]
    assert choose_point(front, 0.02, 0.01)["energy"] == 0.5  # on the search split
    assert choose_point(front, 0.02, 0.01, key="confirm_error")["energy"] == 0.8
    with pytest.raises(ValueError, match="confirm_error"):
        choose_point(front, 0.0, 0.01, key="confirm_error")
    assert dominated_share([(0.5, 0.9)], [(0.6, 0.8), (0.4, 0.95), (0.5, 0.9)]) == \
        pytest.approx(2 / 3)
    assert dominated_share([(0.5, 0.9)], []) == 0.0


def test_spread_and_choice_among_retrained_points():
    recs = [{"energy": e} for e in (0.1, 0.2, 0.3, 0.4, 0.5)]
    assert [r["energy"] for r in spread(recs, 3)] == [0.1, 0.3, 0.5]
    assert spread(recs, 0) == [] and len(spread(recs, 9)) == 5
    chosen = {"genome": [0], "energy": 0.6, "confirm_error": 0.05}
    retrained = [{"label": "front point", "genome": [1], "energy": 0.3,
                  "after": {"val": 0.9, "confirm": 0.96}},
                 {"label": "front point", "genome": [2], "energy": 0.2,
                  "after": {"val": 0.9, "confirm": 0.80}}]
    pick = choose_retrained(retrained, chosen, 0.04, 0.01, "confirm")
    assert pick["genome"] == [1] and pick["retrained"]
    assert not choose_retrained(retrained[1:], chosen, 0.04, 0.01, "confirm")["retrained"]


def test_front_carries_held_out_accuracies_and_the_report_states_the_splits(quick_run):
    run_dir, _ = quick_run
    pareto = json.loads((run_dir / "pareto.json").read_text())
    sizes = pareto["splits"]
    assert set(sizes) == {"train", "search", "confirm", "test"} and sizes["confirm"] > 0
    assert pareto["choice_split"] == "confirm" and "top-1" in pareto["metric"]
    for p in pareto["front"]:
        assert 0 <= p["confirm_accuracy"] <= 1 and 0 <= p["test_accuracy"] <= 1
        assert p["near_chance"] == (p["accuracy"] <= 0.1 + 0.05)
    rows = list(csv.DictReader((run_dir / "pareto.csv").open()))
    assert [float(r["test_accuracy"]) for r in rows] == pytest.approx(
        [p["test_accuracy"] for p in pareto["front"]], abs=1e-6)
    chosen = json.loads((run_dir / "chosen_assignment.json").read_text())["details"]
    assert chosen["choice_split"] == "confirm"
    assert chosen["confirm_accuracy"] >= chosen["exact_confirm_accuracy"] - chosen["max_loss"]
    report = (run_dir / "report.md").read_text()
    assert f"confirmation (never seen by training or the search) {sizes['confirm']}" in report
    assert "Rule: lowest-energy front point whose accuracy on the confirmation split" in report
    assert "open circles the seeded front's points re-scored on the test split" in report
    points = json.loads((run_dir / "search" / "points.json").read_text())
    assert all(0 <= p["test_error"] <= 1 for p in points)


def test_retrain_points_retrains_front_points_and_the_matched_assignment(search_copy):
    cfg = PipelineConfig.quick({"search": {"retrain_points": 1, "candidate_batches": 2}})
    summary = search_stage(Context(search_copy, cfg, progress=False))
    doc = json.loads((search_copy / "retrained_front.json").read_text())
    assert summary["retrained_points"] == len(doc["points"]) >= 1
    assert doc["epochs"] == 1 and doc["batches"] == 2
    assert [p["label"] for p in doc["points"]].count("front point") == 1
    for p in doc["points"]:
        assert set(p["after"]) == {"val", "confirm", "test"} and p["energy"] < 1.0
    chosen = json.loads((search_copy / "chosen_assignment.json").read_text())
    assert ("retrained_accuracy" in chosen["details"]) == summary["chosen_retrained"]
