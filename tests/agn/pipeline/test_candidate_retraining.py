"""Per-candidate retraining (MARLIN's one-epoch protocol) behind --retrain-epochs."""
import dataclasses
import json
import pickle
import re

import numpy as np
import pytest
import torch

from agn.cli import main
from agn.export import export
from agn.intsim import integer_split, predict
from agn.layers import approximate_
from agn.pipeline.context import Context
from agn.run import pipeline_config
from agn.search.retraining import RetrainingScorer
from agn.training import finetune


def _context(run_dir) -> Context:
    return Context(run_dir, pipeline_config(run_dir), progress=False)


def _chosen(run_dir) -> dict[str, str]:
    chosen = json.loads((run_dir / "chosen_assignment.json").read_text())
    return {r["name"]: r["multiplier"] for r in chosen["layers"]}


def test_finetune_moves_weights_not_quantizers_and_restores_process_settings(quick_run):
    run_dir = quick_run[0]
    ctx = _context(run_dir)
    model = ctx.model("noise")
    approximate_(model, _chosen(run_dir))
    before = {k: v.clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(False)
    finetune(model, ctx.dm, ctx.train_config(), epochs=1, batches=3)
    after = model.state_dict()
    moved = [k for k in before if k.endswith(".weight") and not torch.equal(before[k], after[k])]
    assert len(moved) == sum(k.endswith(".weight") for k in before)  # every layer trained
    ranges = [k for k in before if k.endswith(("min_val", "max_val"))]
    assert ranges and all(torch.equal(before[k], after[k]) for k in ranges)
    assert not model.training
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(ValueError, match="epochs >= 1"):
        finetune(model, ctx.dm, ctx.train_config(), epochs=0)


def test_retraining_scorer_is_reproducible_picklable_and_scores_the_retrained_network(quick_run):
    run_dir = quick_run[0]
    ctx = _context(run_dir)
    asg = _chosen(run_dir)
    # without the recovery features (on by default), so the steps can be redone by hand
    plain = dataclasses.replace(ctx.train_config(), compensate=False, round_operands=False)
    scorer = RetrainingScorer(run_dir, plain, epochs=1, batches=2, val_samples=80)
    err = scorer(asg)
    assert scorer(asg) == err
    assert pickle.loads(pickle.dumps(scorer))(asg) == err
    # the same steps by hand: retrain, export, simulate bit-exactly
    model = ctx.model("noise")
    approximate_(model, asg)
    finetune(model, ctx.dm, plain, epochs=1, batches=2)
    net = export(model, ctx.input_shape)
    x, y = integer_split(model, ctx.dm, "val", 80)
    assert err == float(np.mean(predict(net, x) != y))
    assert net.multipliers() == asg
    assert scorer.label == "bit-exact after 1 retraining epoch(s), 2 batches each"
    assert RetrainingScorer(run_dir, ctx.train_config(), 1, 2).label == \
        "bit-exact after 1 retraining epoch(s), 2 batches each, error-mean compensated, " \
        "operands rounded"
    with pytest.raises(ValueError, match="epochs >= 1"):
        RetrainingScorer(run_dir, ctx.train_config(), epochs=0)


def test_search_cli_with_retraining_records_its_scoring(search_copy, tmp_path, capsys):
    run_dir = search_copy
    args = ["search", "--run-dir", str(run_dir), "--gen", "1", "--pop", "4", "--no-baseline",
            "--val", "60"]
    assert main(args + ["--retrain-epochs", "1", "--retrain-batches", "2"]) == 0
    state = json.loads((run_dir / "search" / "search_state.json").read_text())
    assert state["config"]["scoring"] == "bit-exact after 1 retraining epoch(s), 2 batches " \
        "each, error-mean compensated, operands rounded"
    evaluated = [json.loads(line) for line in
                 (run_dir / "search" / "evaluations.jsonl").read_text().splitlines()]
    assert len([e for e in evaluated if e["generation"] == 1]) == 4  # the population
    capsys.readouterr()
    assert main(args) == 2  # the same search scored without retraining is not resumed from it
    assert re.search("agn search: error: .*different search.*'scoring'", capsys.readouterr().err)
