"""Multiplier-aware operand rounding: kept-bit detection, torch engine, export and firmware."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import deploy
from agn.export import export
from agn.intsim import predict, run_integer
from agn.layers import (
    approx_layers,
    approximate_,
    calibrate,
    compensate_,
    fold_bn,
    input_pmfs,
    round_operands_,
    set_mode,
)
from agn.models import build_model
from agn.quant import fake_quant_weight
from errormodels.rounding import IgnoredBits, ignored_bits

SHAPE = (1, 8, 8)
SPECS = ["evo:mul8s_1L2L", "evo:mul8s_1L2N", "evo:mul8s_1KX5", "evo:mul8s_1L2J", "exact"]


@pytest.mark.parametrize("spec,bits", [("evo:mul8s_1L2N", (3, 3)), ("evo:mul8s_1KX5", (2, 0)),
                                       ("bam:v3h3", (3, 0)), ("marlin:255", (0, 0)),
                                       ("exact", (0, 0))])
def test_ignored_bits_are_read_from_the_table(spec, bits):
    assert (ignored_bits(spec).x, ignored_bits(spec).w) == bits
    assert IgnoredBits(x=3).x_offset == 4 and IgnoredBits().x_offset == 0


def test_weight_grid_keeps_only_multiples_and_step_one_is_unchanged():
    w = torch.randn(6, 3, 3, 3)
    a, b = fake_quant_weight(w, 127), fake_quant_weight(w, 127, step=1)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    _, w_q, s_w = fake_quant_weight(w, 127, step=8)
    assert torch.all(w_q % 8 == 0) and int(w_q.abs().max()) == 120
    assert torch.allclose((w_q * s_w).abs().flatten(1).amax(1), w.abs().flatten(1).amax(1))


def _model(rounding: bool, comp: bool = False):
    torch.manual_seed(0)
    m = build_model("lenet5", SHAPE[0], SHAPE[1])
    fold_bn(m)
    x = torch.randn(64, *SHAPE)
    names = [n for n, _ in approx_layers(m)]
    approximate_(m, dict(zip(names, SPECS)))
    calibrate(m, [x], 1)
    set_mode(m, "approx")
    if rounding:
        round_operands_(m)
    if comp:
        compensate_(m, input_pmfs(m, [x], 1))
    return m.eval(), x


def test_rounding_is_set_per_quantizer_and_skips_the_network_input():
    m, _ = _model(True)
    got = {n: (layer.x_offset, layer.w_step) for n, layer in approx_layers(m)}
    assert list(got.values()) == [(0, 4), (4, 8), (2, 1), (1, 2), (0, 1)]


@pytest.mark.parametrize("comp", [False, True])
def test_rounded_export_is_bit_exact_and_agrees_with_the_torch_model(comp):
    m, x = _model(True, comp)
    net = export(m, SHAPE)
    xq = m.quant_in.to_int(x).to(torch.uint8).numpy()
    ref, fast = deploy.run(net, xq), run_integer(net, xq, keep=True)
    for k in ref:
        assert np.array_equal(ref[k].astype(np.int64), fast[k].numpy()), k
    assert [net.infos[layer.input].zero_point for layer in net.layers][1:4] == [4, 2, 1]
    with torch.no_grad():
        fq = m(x).argmax(1).numpy()
    assert np.mean(predict(net, xq) == fq) >= 0.9


def test_rounding_lowers_the_mean_error_of_a_truncating_layer():
    errs = []
    for rounding in (False, True):
        m, x = _model(rounding)
        layer = dict(approx_layers(m))["features.4"]
        with torch.no_grad():
            feats = m.features[:4](m.quant_in(x))
            set_mode(m, "quant")
            exact = layer(feats)
            set_mode(m, "approx")
            errs.append(float((layer(feats) - exact).mean().abs()))
    assert errs[1] < 0.5 * errs[0]


def test_rounding_survives_a_checkpoint():
    m, _ = _model(True)
    m2, _ = _model(False)
    m2.load_state_dict(m.state_dict())
    assert [(a.x_offset, a.w_step) for _, a in approx_layers(m)] == \
        [(b.x_offset, b.w_step) for _, b in approx_layers(m2)]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")
def test_rounded_firmware_matches_the_reference(tmp_path):
    m, x = _model(True, True)
    net = export(m, SHAPE)
    report = deploy.validate(net, m.quant_in.to_int(x[:2]).to(torch.uint8).numpy(), tmp_path)
    assert report.mismatches == 0
