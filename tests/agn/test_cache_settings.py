"""The prefix cache budget as a setting (config key, CLI option, resumable) and Dask workers'
cache statistics gathered into the search summary."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from agn.cli.search import cache_data
from agn.config import ConfigError, load_pipeline_config
from agn.intsim import IntegerScorer, predict
from agn.pipeline import with_neutral
from deploy import zoo


def test_cache_budget_is_a_config_key_and_an_option():
    assert load_pipeline_config([], {}).search.cache_bytes == 1 << 30
    over = cache_data(argparse.Namespace(cache_mb=1.5))
    assert over == {"search": {"cache_bytes": 3 << 19}}
    assert load_pipeline_config([], over).search.cache_bytes == 3 << 19
    assert cache_data(argparse.Namespace(cache_mb=None)) == {}
    with pytest.raises(ConfigError, match="search.cache_bytes: expected a count >= 0, got -1"):
        load_pipeline_config([], {"search": {"cache_bytes": -1}})


def test_a_run_resumes_under_another_budget():
    recorded = {"train": {"seed": 1}, "search": {"pop_size": 4, "cache_bytes": 1 << 30}}
    current = {"train": {"seed": 2}, "search": {"pop_size": 5, "cache_bytes": 0}}
    assert with_neutral(recorded, current) == {
        "train": {"seed": 1}, "search": {"pop_size": 4, "cache_bytes": 0}}
    assert recorded["search"]["cache_bytes"] == 1 << 30  # not modified


def test_dask_workers_cache_statistics_are_gathered():
    from agn.pipeline.stages import _cache_figures
    from agn.search import dask_runner

    net = zoo.lenet5(1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6,) + tuple(net.input.shape)).astype(np.uint8)
    y = predict(net, x)
    scorer = IntegerScorer(net, x, y, batch_size=4)
    names = [layer.name for layer in net.layers]
    items = [{n: "marlin:0" for n in names}, {**{n: "marlin:0" for n in names},
                                              names[-1]: "marlin:255"}] * 2
    with dask_runner(workers=2) as runner:
        errors = dict(runner(scorer, items))
        assert sorted(errors) == [0, 1, 2, 3]
        summary = _cache_figures(scorer, runner)
        assert summary is not None and summary["workers"] == 2
        assert summary["candidates"] == len(items)
        assert summary["layers_run"] == len(items) * 2 * len(names)  # 2 chunks of 4, 2
        assert summary["capacity_bytes"] == 2 * scorer.cache.capacity
        again = _cache_figures(scorer, runner)  # the workers' counters restarted
        assert again is not None and again["candidates"] == 0
    assert runner.each_worker(lambda item: 0.0, len) == []  # never shipped: nothing to read
