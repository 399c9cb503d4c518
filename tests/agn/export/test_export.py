import numpy as np
import pytest
import torch

import deploy
from agn.export import ExportError, export, requant_params
from agn.intsim import IntegerScorer, predict, run_integer
from agn.layers import approx_layers, approximate_, calibrate, fold_bn, set_mode
from agn.models import build_model


def _quantized(name, shape, seed=0, n=48):
    torch.manual_seed(seed)
    m = build_model(name, shape[0], shape[1])
    fold_bn(m)
    x = torch.randn(n, *shape)
    calibrate(m, [x], 1)
    set_mode(m, "quant")
    return m.eval(), x


def _assert_same(net, xq):
    ref = deploy.run(net, xq)
    fast = run_integer(net, xq, keep=True)
    assert list(ref) == list(fast)
    for k in ref:
        diff = int((ref[k].astype(np.int64) != fast[k].numpy()).sum())
        assert diff == 0, f"node {k}: {diff} mismatches between agn.intsim and deploy.run"


@pytest.mark.parametrize("name,shape", [("lenet5", (1, 8, 8)), ("marlin_mnist", (1, 28, 28))])
def test_export_runs_bit_exact_in_torch_and_numpy(name, shape):
    m, x = _quantized(name, shape)
    net = export(m, shape, name)
    assert [layer.name for layer in net.layers] == [n for n, _ in approx_layers(m)]
    xq = m.quant_in.to_int(x).to(torch.uint8).numpy()
    rng = np.random.default_rng(1)
    for _ in range(3):
        levels = {layer.name: f"marlin:{rng.integers(256)}" for layer in net.layers}
        _assert_same(deploy.with_multipliers(net, levels), xq)


def test_exported_integer_network_predicts_like_the_fake_quant_model():
    m, x = _quantized("lenet5", (1, 8, 8), n=256)
    net = export(m, (1, 8, 8))
    xq = m.quant_in.to_int(x).to(torch.uint8).numpy()
    with torch.no_grad():
        fq = m(x).argmax(1).numpy()
    assert np.mean(predict(net, xq) == fq) >= 0.97


def test_narrow_activation_domain_is_exported_and_exact():
    m, x = _quantized("lenet5", (1, 8, 8))
    names = [n for n, _ in approx_layers(m)]
    approximate_(m, {n: "evo:mul8s_1L2N" if i % 2 else "marlin:7" for i, n in enumerate(names)})
    calibrate(m, [x], 1)
    set_mode(m, "approx")
    net = export(m, (1, 8, 8))
    assert net.multipliers() == {n: ("evo:mul8s_1L2N" if i % 2 else "marlin:7")
                              for i, n in enumerate(names)}
    _assert_same(net, m.quant_in.to_int(x).to(torch.uint8).numpy())


def test_scorer_counts_errors():
    m, x = _quantized("lenet5", (1, 8, 8))
    net = export(m, (1, 8, 8))
    xq = m.quant_in.to_int(x).to(torch.uint8).numpy()
    y = predict(net, xq)
    y[:12] = (y[:12] + 1) % 10
    scorer = IntegerScorer(net, xq, y)
    assert scorer(net.multipliers()) == pytest.approx(12 / len(y))
    with pytest.raises(ValueError, match="as many labels"):
        IntegerScorer(net, xq, y[:3])
    names = [layer.name for layer in net.layers]
    fixed = IntegerScorer(net, xq, y, fixed={names[-1]: "marlin:0"})
    free = {n: "marlin:3" for n in names[:-1]}
    assert fixed(free) == scorer({**free, names[-1]: "marlin:0"})
    with pytest.raises(ValueError, match="missing"):
        IntegerScorer(net, xq, y)(free)


def test_requant_params_are_close_and_in_range():
    ratios = np.array([1e-6, 3.7e-3, 0.5, 1.0, 1.9999, 300.0])
    mult, shift = requant_params(ratios)
    assert np.all((mult >= 2**30) & (mult < 2**31)) and np.all((shift >= 1) & (shift <= 62))
    np.testing.assert_allclose(mult / 2.0**shift, ratios, rtol=2**-29)
    with pytest.raises(ExportError, match="positive"):
        requant_params(np.array([0.1, 0.0]))


def test_unfolded_batchnorm_is_refused():
    torch.manual_seed(0)
    m = build_model("resnet8", 1, 8)
    x = torch.randn(8, 1, 8, 8)
    calibrate(m, [x], 1)
    set_mode(m, "quant")
    with pytest.raises(ExportError, match="BatchNorm must be folded"):
        export(m.eval(), (1, 8, 8))


@pytest.mark.parametrize("name", ["resnet8", "mobilenetv2_small"])
def test_residual_networks_export_bit_exact(name):
    torch.manual_seed(0)
    m = build_model(name, 3, 16)
    x = torch.randn(24, 3, 16, 16)
    calibrate(m, [x], 1)  # float-mode statistics for BatchNorm, then fold and recalibrate
    fold_bn(m)
    calibrate(m, [x], 1)
    set_mode(m, "quant")
    m.eval()
    net = export(m, (3, 16, 16), name)
    assert [layer.name for layer in net.layers] == [n for n, _ in approx_layers(m)]
    assert any(node.op == "add" for node in net.nodes)
    xq = m.quant_in.to_int(x).to(torch.uint8).numpy()
    rng = np.random.default_rng(3)
    _assert_same(deploy.with_multipliers(
        net, {layer.name: f"marlin:{rng.integers(256)}" for layer in net.layers}), xq)
    with torch.no_grad():
        fq = m(x).argmax(1).numpy()
    assert np.mean(predict(net, xq) == fq) >= 0.9
