"""Operand rounding on the integer network (the search scorer's): the exporter's rounded network
bit for bit, with and without compensation, through the scorer's caches."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import deploy
from agn.export import compensate_network, export
from agn.intsim import IntegerScorer, predict, run_integer
from agn.ir_rounding import ActivationRounding
from agn.layers import (
    approx_layers,
    approximate_,
    calibrate,
    compensate_,
    fold_bn,
    input_pmfs,
    restrict_activations_,
    round_operands_,
    set_mode,
)
from agn.models import build_model
from errormodels.compensate import Compensation

CIRCUITS = ["evo:mul8s_1L2L", "evo:mul8s_1L2N", "evo:mul8s_1KX5", "evo:mul8s_1L2J",
            "evo:mul8s_1KV9", "exact"]


def _model(name: str, shape: tuple[int, int, int]):
    torch.manual_seed(0)
    m = build_model(name, shape[0], shape[1])
    fold_bn(m)
    restrict_activations_(m, "evo:mul8s_*")  # as the pipeline's QAT: any circuit fits any layer
    x = torch.randn(32, *shape)
    names = [n for n, _ in approx_layers(m)]
    approximate_(m, {n: "evo:mul8s_1KV9" for n in names})
    calibrate(m, [x], 1)
    set_mode(m, "approx")
    return m.eval(), x, names


def _assignments(names: list[str], n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    return [{k: CIRCUITS[int(i)] for k, i in zip(names, rng.integers(0, len(CIRCUITS), len(names)))}
            for _ in range(n)]


def _rounded_export(m, x, shape, asg: dict[str, str], comp: bool):
    """What the exporter writes for the model under ``asg``, activations rounded."""
    approximate_(m, asg)
    restrict_activations_(m, "evo:mul8s_*")  # approximate_ widens the quantizers of exact layers
    round_operands_(m, weights=False)
    pmfs = input_pmfs(m, [x], 1)
    if comp:
        compensate_(m, pmfs)
    net = export(m, shape)
    for _, layer in approx_layers(m):  # back to the plain model
        layer.set_operand_rounding(0, 1)
        layer.set_bias_correction(None)
    return net, pmfs


def _same(a: deploy.Network, b: deploy.Network, xq: np.ndarray) -> None:
    ra, rb = run_integer(a, xq, keep=True), run_integer(b, xq, keep=True)
    assert list(ra) == list(rb)
    for k in ra:
        assert torch.equal(ra[k], rb[k]), k
    for u, v in zip(a.nodes, b.nodes):
        for f in ("bias", "weight"):
            if hasattr(u, f):
                assert np.array_equal(getattr(u, f), getattr(v, f)), (u.name, f)
        assert a.infos[u.name] == b.infos[v.name], u.name


@pytest.mark.parametrize("name,comp", [("lenet5", False), ("lenet5", True), ("resnet8", True)])
def test_ir_rounding_is_the_rounded_export(name, comp):
    shape = (1, 8, 8)
    m, x, names = _model(name, shape)
    plain = export(m, shape)
    rounding = ActivationRounding(plain)
    xq = m.quant_in.to_int(x).to(torch.uint8).numpy()
    offsets_seen = set()
    for asg in _assignments(names, 2):
        want, pmfs = _rounded_export(m, x, shape, asg, comp)
        offsets = rounding.offsets(asg)
        offsets_seen.add(offsets)
        got = rounding.apply(deploy.with_multipliers(plain, asg), offsets)
        if comp:
            got = compensate_network(got, Compensation(pmfs), rounding.layer_offsets(offsets))
        _same(got, want, xq)
        assert np.array_equal(deploy.run(got, xq[:4])[got.nodes[-1].name].astype(np.int64),
                              run_integer(got, xq[:4]).numpy())
    assert any(any(o) for o in offsets_seen)


def test_rounding_scorer_scores_the_rounded_networks_through_its_caches():
    shape = (1, 8, 8)
    m, x, names = _model("lenet5", shape)
    plain = export(m, shape)
    xq = m.quant_in.to_int(x).to(torch.uint8).numpy()
    y = np.arange(len(xq)) % 10
    pmfs = input_pmfs(m, [x], 1)
    scorer = IntegerScorer(plain, xq, y, batch_size=16, rounding=True,
                           compensation=Compensation(pmfs))
    # the same first layers, then only the second layer changes: its producer's offset moves
    asgs = _assignments(names, 2, seed=1)
    asgs += [{**asgs[0], names[1]: c} for c in ("evo:mul8s_1L2N", "exact")]
    for asg in asgs + asgs[:1]:
        want, _ = _rounded_export(m, x, shape, asg, True)
        assert scorer(asg) == float(np.mean(predict(want, xq) != y))
    assert scorer.cache_stats().layers_reused > 0
    assert ActivationRounding(plain).offsets({n: "exact" for n in names}) == \
        (0,) * len(ActivationRounding(plain).producers)
