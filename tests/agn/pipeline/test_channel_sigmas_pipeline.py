"""The quick pipeline with per-channel sigmas, matched and searched at filter granularity."""
import json
import shutil

import numpy as np
import pytest

import errormodels as em
from agn.config import document, load_pipeline_config
from agn.pipeline import run_pipeline
from agn.run import pipeline_config


def test_quick_pipeline_with_channel_sigmas_at_filter_granularity_deploys(run_copy):
    """From the quick run's QAT model: noise training with one sigma per output channel, filter
    matching from each channel's own tolerance, a small grouped search, firmware 0 mismatches."""
    run_dir = run_copy
    cfg = load_pipeline_config([document(pipeline_config(run_dir))], {
        "train": {"noise": {"per_channel": True}, "noise_stage": {"epochs": 1}},
        "search": {"granularity": "filter", "group": 2, "pop_size": 4, "n_gen": 1,
                   "uniform_points": 2}})
    status = json.loads((run_dir / "pipeline.json").read_text())
    finished = {k: v for k, v in status["finished"].items() if k in ("float", "qat")}
    (run_dir / "pipeline.json").write_text(json.dumps({"config": document(cfg),
                                                       "finished": finished}))
    for name in ("noise", "retrain", "search", "logs/noise", "logs/retrain"):
        shutil.rmtree(run_dir / name)
    logs: list[str] = []
    run_pipeline(run_dir, cfg, progress=False, log=logs.append)
    assert "[qat] already finished, skipped" in logs and "[noise] running" in logs
    sigmas = em.read_sigmas(run_dir)
    assert json.loads((run_dir / "sigmas.json").read_text())["version"] == 2
    assert all(s.channel_sigmas and len(set(s.channel_sigmas)) > 1 for s in sigmas)
    for s in sigmas:  # the layer's sigma is its channels' quadratic mean
        assert s.sigma == pytest.approx(np.sqrt(np.mean(np.square(s.channel_sigmas))), rel=1e-6)
    done = json.loads((run_dir / "pipeline.json").read_text())["finished"]
    assert done["deploy"]["mismatches"] == 0
    report = (run_dir / "report.md").read_text()
    assert "channel sigmas min / median / max" in report and "filters per multiplier" in report
