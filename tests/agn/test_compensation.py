"""Error-mean compensation in the torch model, the export and the firmware (bit-exact)."""
from __future__ import annotations

import numpy as np
import torch

import deploy
import errormodels as em
from agn.export import compensate_network, export
from agn.intsim import IntegerScorer, run_integer
from agn.layers import (
    approx_layers,
    approximate_,
    calibrate,
    compensate_,
    fold_bn,
    input_pmfs,
    set_mode,
)
from agn.models import build_model

SHAPE = (1, 8, 8)


def _model(specs):
    torch.manual_seed(0)
    m = build_model("lenet5", SHAPE[0], SHAPE[1])
    fold_bn(m)
    x = torch.randn(64, *SHAPE)
    names = [n for n, _ in approx_layers(m)]
    approximate_(m, dict(zip(names, specs)))
    calibrate(m, [x], 1)
    set_mode(m, "approx")
    return m.eval(), x, names


def _xq(m, x):
    return m.quant_in.to_int(x).to(torch.uint8).numpy()


def test_compensated_export_is_bit_exact_and_only_biases_change():
    m, x, names = _model(["marlin:255", "evo:mul8s_1L2N", "marlin:40", "bam:v5h2", "exact"])
    plain = export(m, SHAPE)
    pmfs = input_pmfs(m, [x], 1)
    compensate_(m, pmfs)
    net = export(m, SHAPE)
    assert net.multipliers() == plain.multipliers()
    moved = 0
    for a, b in zip(plain.layers, net.layers):
        assert np.array_equal(a.weight, b.weight)
        corr = em.bias_corrections(a.weight, pmfs[a.name], a.multiplier)
        assert np.array_equal(b.bias.astype(np.int64), a.bias.astype(np.int64) - corr)
        moved += int(np.count_nonzero(corr))
    assert moved > 0
    # the scorer's compensation gives the same network from the uncompensated one
    same = compensate_network(plain, em.Compensation(pmfs))
    assert all(np.array_equal(a.bias, b.bias) for a, b in zip(same.layers, net.layers))
    xq = _xq(m, x)
    ref, fast = deploy.run(net, xq), run_integer(net, xq, keep=True)
    for k in ref:
        assert np.array_equal(ref[k].astype(np.int64), fast[k].numpy()), k
    y = ref[net.nodes[-1].name].argmax(1)
    scorer = IntegerScorer(plain, xq, y, compensation=em.Compensation(pmfs))
    assert scorer(plain.multipliers()) == 0.0


def test_compensation_removes_the_measured_mean_error_of_a_layer():
    m, x, names = _model(["marlin:255", "exact", "exact", "exact", "exact"])
    layer = dict(approx_layers(m))[names[0]]
    x_in = m.quant_in(x)
    with torch.no_grad():
        set_mode(m, "quant")
        exact = layer(x_in)
        set_mode(m, "approx")
        before = layer(x_in) - exact
        compensate_(m, input_pmfs(m, [x], 1))
        after = layer(x_in) - exact
    b, a = before.mean(dim=(0, 2, 3)).abs(), after.mean(dim=(0, 2, 3)).abs()
    assert float(b.mean()) > 0
    assert float(a.mean()) < 0.1 * float(b.mean())


def test_bias_correction_survives_a_checkpoint_and_is_absent_when_off():
    m, x, names = _model(["marlin:255", "marlin:100", "exact", "exact", "exact"])
    assert all("bias_correction" not in layer.get_extra_state() for _, layer in approx_layers(m))
    compensate_(m, input_pmfs(m, [x], 1))
    m2, _, _ = _model(["exact"] * 5)
    m2.load_state_dict(m.state_dict())
    for (_, a), (_, b) in zip(approx_layers(m), approx_layers(m2)):
        assert (a.bias_correction is None) == (b.bias_correction is None)
        if a.bias_correction is not None:
            assert torch.equal(a.bias_correction, b.bias_correction)
    layer = dict(approx_layers(m))[names[0]]
    layer.set_multiplier("marlin:3")  # another multiplier invalidates the correction
    assert layer.bias_correction is None
