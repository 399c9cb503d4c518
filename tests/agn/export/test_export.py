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


def _with_dead_channel(bias: float):
    """LeNet-5 whose first conv's channel 0 has near-zero weights under an ordinary bias (a
    folded BatchNorm with gamma ~ 0): its accumulator bias is ~1e11 steps, beyond int32."""
    m, x = _quantized("lenet5", (1, 8, 8), n=64)
    set_mode(m, "float")
    conv = approx_layers(m)[0][1]
    with torch.no_grad():
        conv.weight[0].mul_(1e-7)
        conv.bias[0] = bias
    calibrate(m, [x], 1)
    set_mode(m, "quant")
    return m.eval(), x, conv


def test_a_channel_with_near_zero_weights_is_exported_as_its_constant_never_wrapped():
    m, x, conv = _with_dead_channel(0.8)
    codes = {}
    q = m.features[2]  # the ActQuant after conv1's ReLU
    assert q.__class__.__name__ == "ActQuant"
    handle = q.register_forward_hook(lambda mod, i, o: codes.setdefault("y", mod.to_int(o)))
    with torch.no_grad():
        m(x)
    handle.remove()
    want = codes["y"][:, 0].to(torch.int64)
    assert int(want.min()) == int(want.max()) > 1  # a constant channel, not zero
    net = export(m, (1, 8, 8))
    first = net.layers[0]
    assert int(np.abs(first.bias.astype(np.int64)).max()) < 2**31
    xq = m.quant_in.to_int(x).to(torch.uint8).numpy()
    got = deploy.run(net, xq)[first.name][:, 0].astype(np.int64)
    np.testing.assert_array_equal(got, want.numpy())
    _assert_same(net, xq)
    _assert_same(deploy.with_multipliers(net, {n.name: "marlin:200" for n in net.layers}), xq)


def test_a_huge_bias_on_the_int32_logits_is_refused_not_wrapped():
    m, x = _quantized("lenet5", (1, 8, 8), n=64)
    set_mode(m, "float")
    last = approx_layers(m)[-1][1]
    with torch.no_grad():
        last.weight.mul_(1e-7)  # the logits layer has one weight scale for all channels
        last.bias.zero_()
        last.bias[3] = 0.7
    calibrate(m, [x], 1)
    set_mode(m, "quant")
    with pytest.raises(ExportError, match=r"output channel\(s\) \[3\].*beyond int32.*int32 output"):
        export(m.eval(), (1, 8, 8))
