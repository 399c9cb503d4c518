"""The prefix activation cache of IntegerScorer: same errors with and without it, real reuse."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from agn.intsim import IntegerScorer, predict
from agn.prefix_cache import ActivationCache
from agn.search import SearchConfig, SearchSpace, run_search
from deploy import with_multipliers, zoo


def _data(net, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n,) + tuple(net.input.shape)).astype(np.uint8)
    y = predict(net, x)
    y[: n // 3] = (y[: n // 3] + 1) % 10  # an error rate away from 0 and 1
    return x, y


def _family(net, count: int, seed: int) -> list[dict[str, str]]:
    """Assignments as NSGA-II makes them: a few parents, children that change one layer or
    splice two parents at a point, repeats of earlier ones (few levels: few kernels to
    prepare)."""
    rng = np.random.default_rng(seed)
    names = [layer.name for layer in net.layers]
    pick = lambda: f"marlin:{int(rng.choice([0, 5, 77, 200, 255]))}"  # noqa: E731
    out = [{n: pick() for n in names} for _ in range(3)]
    while len(out) < count:
        a, b = out[int(rng.integers(len(out)))], out[int(rng.integers(len(out)))]
        cut = int(rng.integers(len(names)))
        child = {n: (a if i < cut else b)[n] for i, n in enumerate(names)}
        child[names[int(rng.integers(len(names)))]] = pick()
        out.append(child)
    return out + out[:2]


@pytest.mark.parametrize("make", [zoo.lenet5, zoo.resnet8], ids=["lenet5", "resnet8"])
def test_errors_are_the_same_with_and_without_the_cache(make):
    net = make(1)
    x, y = _data(net, 20)
    genomes = _family(net, 8, seed=2)
    plain = IntegerScorer(net, x, y, batch_size=8, cache_bytes=0)
    cached = IntegerScorer(net, x, y, batch_size=8)
    tiny = IntegerScorer(net, x, y, batch_size=8, cache_bytes=40_000)  # evicts all along
    expected = [float(np.mean(predict(with_multipliers(net, g), x, 8) != y)) for g in genomes]
    assert [plain(g) for g in genomes] == expected
    assert [cached(g) for g in genomes] == expected
    assert [tiny(g) for g in genomes] == expected
    assert tiny.cache.nbytes <= 40_000
    stats = cached.cache_stats()
    assert stats.candidates == len(genomes)
    assert stats.layers_run == len(genomes) * 3 * (len(net.layers))  # 3 chunks of 8, 8, 4
    assert 0 < stats.layers_reused < stats.layers_run and 0 < stats.hit_rate < 1
    assert plain.cache_stats().layers_reused == 0 and plain.cache.nbytes == 0


def test_only_the_layers_downstream_of_a_change_run_again():
    net = zoo.resnet8(3)
    x, y = _data(net, 8)
    scorer = IntegerScorer(net, x, y)
    names = [layer.name for layer in net.layers]
    base = {n: "marlin:9" for n in names}
    scorer(base)
    scorer.reset_cache_stats()
    scorer({**base, "fc": "marlin:200"})  # everything up to the classifier is reused
    assert scorer.cache_stats().layers_reused == len(names) - 1
    scorer.reset_cache_stats()
    # the shortcut of block 2 feeds block 2's add only: block 2's convs and all before are reused
    scorer({**base, "block2_down": "marlin:201"})
    reused = names.index("block2_down")
    assert scorer.cache_stats().layers_reused == reused
    scorer.reset_cache_stats()
    scorer({**base, "conv1": "marlin:202"})  # the first layer: nothing to reuse
    assert scorer.cache_stats().layers_reused == 0


def test_search_front_is_the_same_with_the_cache_disabled():
    net = zoo.lenet5(4)
    x, y = _data(net, 24)
    names = [layer.name for layer in net.layers]
    space = SearchSpace.build(names, [1000] * len(names), "marlin:*")
    cfg = SearchConfig(pop_size=8, n_gen=3, seed=5, init="random")
    cached = IntegerScorer(net, x, y, batch_size=16)
    with_cache = run_search(space, cached, cfg, progress=False)
    without = run_search(space, IntegerScorer(net, x, y, batch_size=16, cache_bytes=0), cfg,
                         progress=False)
    assert with_cache.front() == without.front()
    assert [(s.genome, s.error) for s in with_cache.store.items()] == \
        [(s.genome, s.error) for s in without.store.items()]
    assert cached.cache_stats().layers_reused > 0


def test_activation_cache_is_a_byte_bounded_lru():
    cache = ActivationCache(capacity=300)
    t = [torch.zeros(100, dtype=torch.uint8) for _ in range(4)]
    for i in range(3):
        cache.put(i, t[i])
    assert cache.nbytes == 300 and len(cache) == 3
    assert cache.get(0) is t[0]  # 0 is now the most recent: 1 goes first
    cache.put(3, t[3])
    assert cache.get(1) is None and cache.get(0) is t[0] and cache.nbytes == 300
    cache.put(3, torch.zeros(50, dtype=torch.int16))  # replaces: same bytes
    assert cache.nbytes == 300 and len(cache) == 3
    cache.put("big", torch.zeros(301, dtype=torch.uint8))  # larger than the budget: not kept
    assert cache.get("big") is None and cache.nbytes == 300
    clone = pickle.loads(pickle.dumps(cache))
    assert clone.capacity == 300 and len(clone) == 0 and clone.nbytes == 0
    off = ActivationCache(0)
    off.put(0, t[0])
    assert len(off) == 0
    with pytest.raises(ValueError, match="capacity expected bytes >= 0, got -1"):
        ActivationCache(-1)


def test_scorer_pickles_without_its_cached_activations():
    net = zoo.lenet5(0)
    x, y = _data(net, 8)
    scorer = IntegerScorer(net, x, y)
    g = _family(net, 1, seed=0)[0]
    err = scorer(g)
    assert len(scorer.cache) > 0
    clone = pickle.loads(pickle.dumps(scorer))
    assert len(clone.cache) == 0 and clone(g) == err


def test_checked_layers_are_reused_and_bad_assignments_still_refused():
    from deploy.errors import AssignmentError

    net = zoo.lenet5(0)
    x, y = _data(net, 8)
    scorer = IntegerScorer(net, x, y, cache_bytes=0)
    g = _family(net, 1, seed=1)[0]
    scorer(g)
    first = next(iter(g))
    with pytest.raises(AssignmentError, match="missing"):
        scorer({k: v for k, v in g.items() if k != first})
    with pytest.raises(AssignmentError):
        scorer({**g, "nowhere": "marlin:3"})
    with pytest.raises(AssignmentError):
        scorer({**g, first: "marlin:999"})


def test_new_layer_specs_are_checked_alone_with_the_same_errors(monkeypatch):
    """After one whole-network check, a candidate changing one layer's spec is checked on that
    layer alone (no with_multipliers call); errors equal a fresh whole-network check's, and a
    spec that fails goes to the whole check, which raises."""
    import deploy

    net = zoo.lenet5(3)
    x, y = _data(net, 12)
    genomes = _family(net, 10, seed=4)
    calls = []
    real = deploy.with_multipliers

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(deploy, "with_multipliers", spy)
    scorer = IntegerScorer(net, x, y)
    errors = [scorer(g) for g in genomes]
    assert len(calls) == 1
    fresh = [IntegerScorer(net, x, y, cache_bytes=0)(g) for g in genomes]
    assert errors == fresh and len(calls) == 1 + len(genomes)
    bad = {**genomes[0], net.layers[0].name: "marlin:999"}
    with pytest.raises(ValueError, match="marlin:999"):
        scorer(bad)
    assert len(calls) == 2 + len(genomes)
