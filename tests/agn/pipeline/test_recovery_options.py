"""Accuracy-recovery options in the pipeline: compensated search scoring, candidate retraining
and the retrain stage with compensation, operand rounding and distillation."""
import dataclasses
import json
import shutil

import numpy as np

import deploy
import errormodels as em
from agn.export import compensate_network
from agn.intsim import predict
from agn.ir_rounding import ActivationRounding
from agn.layers import approx_layers
from agn.pipeline.context import Context
from agn.pipeline.stages import _heldout, _scorer
from agn.run import SEARCH_DIR, load_stage_model, pipeline_config
from agn.search import SearchConfig
from agn.search.retraining import RetrainingScorer
from agn.training import run_stage


def _chosen(run_dir) -> dict[str, str]:
    chosen = json.loads((run_dir / "chosen_assignment.json").read_text())
    return {r["name"]: r["multiplier"] for r in chosen["layers"]}


def test_default_search_scores_the_compensated_rounded_network(quick_run):
    run_dir = quick_run[0]
    cfg = pipeline_config(run_dir)
    assert cfg.search.compensate and cfg.search.round_operands  # the defaults
    ctx = Context(run_dir, cfg, progress=False)
    net = deploy.load(run_dir / SEARCH_DIR)
    scorer, label = _scorer(ctx, net)
    assert "compensated" in label and "rounded" in label
    asg = _chosen(run_dir)
    comp = em.Compensation.from_stats(em.load_stats(run_dir / em.STATS_FILE))
    rounding = ActivationRounding(net)
    offsets = rounding.offsets(asg)
    by_hand = compensate_network(rounding.apply(deploy.with_multipliers(net, asg), offsets),
                                 comp, rounding.layer_offsets(offsets))
    x, y = ctx.integer_split(ctx.model("noise"), "val", cfg.search.val_samples)
    assert scorer(asg) == float(np.mean(predict(by_hand, x) != y))
    held = _heldout(ctx, net)  # the front's re-scoring on held-out data scores the same way
    xt, yt = ctx.integer_split(ctx.model("noise"), "test")
    assert held.score(asg, ("test",))["test"] == float(np.mean(predict(by_hand, xt) != yt))
    off = dataclasses.replace(cfg, search=dataclasses.replace(
        cfg.search, compensate=False, round_operands=False))
    plain, label = _scorer(Context(run_dir, off, progress=False), net)
    assert label == SearchConfig.scoring
    assert plain(asg) == float(np.mean(predict(deploy.with_multipliers(net, asg), x) != y))


def test_candidate_retraining_with_every_option_scores(quick_run):
    run_dir = quick_run[0]
    ctx = Context(run_dir, pipeline_config(run_dir), progress=False)
    cfg = dataclasses.replace(ctx.train_config(), compensate=True, round_operands=True,
                              retrain_distill=0.5)
    scorer = RetrainingScorer(run_dir, cfg, epochs=1, batches=1, val_samples=40)
    assert "compensated" in scorer.label and "rounded" in scorer.label
    assert 0.0 <= scorer(_chosen(run_dir)) <= 1.0


def test_retrain_stage_compensates_and_exports_the_corrections(run_copy):
    for name in ("retrain", "logs"):
        shutil.rmtree(run_copy / name, ignore_errors=True)
    ctx = Context(run_copy, pipeline_config(run_copy), progress=False)
    cfg = dataclasses.replace(ctx.train_config(str(run_copy / "chosen_assignment.json")),
                              compensate=True, retrain_distill=0.5)
    run_stage("retrain", run_copy, dataclasses.replace(
        cfg, retrain=dataclasses.replace(cfg.retrain, epochs=1), limit_train_batches=2))
    model = load_stage_model("retrain", run_copy, cfg, ctx.dm)
    layers = dict(approx_layers(model))
    approx = [n for n, m in _chosen(run_copy).items() if not m.endswith(("exact", ":0"))]
    assert approx and any(layers[n].bias_correction is not None for n in approx)
