"""Approximable layers: modes against slow integer references, padding with the zero point,
straight-through gradients, checkpoints, and the whole-model operations."""
import numpy as np
import pytest
import torch
from torch import nn

import hwlib
from agn.layers import (
    ApproxConv2d,
    ApproxLinear,
    AssignmentError,
    LayerError,
    Mode,
    approx_layers,
    approximate_,
    calibrate,
    fold_bn,
    set_mode,
)
from agn.quant import fake_quant_bias

torch.set_num_threads(1)


def ref_conv_acc(x_q, w_q, spec, stride, padding, groups, zp):
    """Slow, obvious reference: table lookups over the zero-point-padded integer input."""
    m = hwlib.get(spec)
    table = m.table()
    x = np.asarray(x_q, dtype=np.int64)
    w = np.asarray(w_q, dtype=np.int64)
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=zp)
    n, _, h, wd = xp.shape
    co_n, cg, kh, kw = w.shape
    ho, wo = (h - kh) // sh + 1, (wd - kw) // sw + 1
    out = np.zeros((n, co_n, ho, wo), dtype=np.int64)
    per_group = co_n // groups
    for co in range(co_n):
        g = co // per_group
        for ci in range(cg):
            for ky in range(kh):
                for kx in range(kw):
                    xs = xp[:, g * cg + ci, ky:ky + sh * (ho - 1) + 1:sh,
                            kx:kx + sw * (wo - 1) + 1:sw]
                    out[:, co] += table[xs - m.x_domain.lo, w[co, ci, ky, kx] - m.w_domain.lo]
    return out


def calibrated_conv(cin=4, cout=6, k=3, stride=1, padding=1, groups=1, bias=True, shift=0.7,
                    seed=0):
    torch.manual_seed(seed)
    conv = ApproxConv2d(cin, cout, k, stride, padding, groups=groups, bias=bias)
    with torch.no_grad():
        if bias:
            conv.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, cin, 9, 8) + shift  # affine input: zero point far from 0
    conv.train()
    conv(x)
    conv.eval()
    return conv, x


def dequant_reference(layer, x, acc):
    s_x, zp = layer.input_quant.qparams()
    _, w_q, _ = layer.integer_operands(x)
    s_w = layer.weight_scales()
    shape = (1, -1, 1, 1) if acc.ndim == 4 else (1, -1)
    corr = zp * w_q.to(torch.float64).flatten(1).sum(1)
    out = (s_x * s_w).double().view(shape) * (torch.as_tensor(acc, dtype=torch.float64)
                                              - corr.view(shape))
    if layer.bias is not None:
        out = out + fake_quant_bias(layer.bias, s_x, s_w.view(-1, 1)).double().view(shape)
    return out


GEOMETRIES = [dict(stride=1, padding=1, groups=1), dict(stride=2, padding=1, groups=2),
              dict(stride=(2, 1), padding=(2, 0), groups=1, k=5),
              dict(cin=4, cout=4, stride=1, padding=1, groups=4)]


@pytest.mark.parametrize("geo", GEOMETRIES)
@pytest.mark.parametrize("spec", ["exact", "marlin:0", "marlin:77", "marlin:255"])
def test_approx_conv_accumulators_are_bit_exact_and_padded_with_the_zero_point(geo, spec):
    conv, x = calibrated_conv(**geo)
    conv.set_multiplier(spec)
    x_q, w_q, zp = conv.integer_operands(x)
    assert x_q.dtype == torch.uint8 and w_q.dtype == torch.int8 and zp > 20
    acc = conv._approx_acc(x_q, w_q, zp)
    ref = ref_conv_acc(x_q, w_q, spec, conv.stride, conv.padding, conv.groups, zp)
    np.testing.assert_array_equal(acc.numpy(), ref)
    set_mode(conv, Mode.APPROX)
    out = conv(x)
    np.testing.assert_allclose(out.detach().double().numpy(),
                               dequant_reference(conv, x, ref).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_padding_with_integer_zero_would_change_border_outputs():
    """The reference code padded with integer 0 (a defect, docs/noise_method.md): this differs."""
    conv, x = calibrated_conv(shift=1.5)
    conv.set_multiplier("marlin:255")
    x_q, w_q, zp = conv.integer_operands(x)
    good = ref_conv_acc(x_q, w_q, "marlin:255", conv.stride, conv.padding, 1, zp)
    bad = ref_conv_acc(x_q, w_q, "marlin:255", conv.stride, conv.padding, 1, 0)
    assert zp != 0
    assert not np.array_equal(good[..., 0, :], bad[..., 0, :])          # borders differ
    np.testing.assert_array_equal(good[..., 1:-1, 1:-1], bad[..., 1:-1, 1:-1])
    set_mode(conv, "approx")
    np.testing.assert_allclose(conv(x).detach().double().numpy(),
                               dequant_reference(conv, x, good).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_quant_mode_equals_the_exact_integer_network_including_zero_point_sign():
    """Quant mode == s_x s_w (sum (x_q - zp) w_q) + b_q; a wrong-sign zp correction would fail."""
    conv, x = calibrated_conv(stride=2, groups=2, shift=1.0)
    set_mode(conv, "quant")
    x_q, w_q, zp = conv.integer_operands(x)
    acc = ref_conv_acc(x_q, w_q, "exact", conv.stride, conv.padding, 2, zp)
    np.testing.assert_allclose(conv(x).detach().double().numpy(),
                               dequant_reference(conv, x, acc).detach().numpy(),
                               rtol=1e-4, atol=1e-4)
    set_mode(conv, "approx")  # exact multiplier through the engine: same numbers
    np.testing.assert_allclose(conv(x).detach().double().numpy(),
                               dequant_reference(conv, x, acc).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_approx_linear_is_bit_exact():
    torch.manual_seed(1)
    lin = ApproxLinear(20, 7)
    x = torch.randn(5, 20) + 0.5
    lin.train()
    lin(x)
    lin.eval()
    lin.set_multiplier("marlin:63")
    x_q, w_q, zp = lin.integer_operands(x)
    table = hwlib.get("marlin:63").table()
    ref = table[x_q.long().numpy()[:, None, :], w_q.long().numpy()[None, :, :] + 128].sum(-1)
    acc = lin._approx_acc(x_q, w_q, zp)
    np.testing.assert_array_equal(acc.numpy(), ref)
    set_mode(lin, "approx")
    np.testing.assert_allclose(lin(x).detach().double().numpy(),
                               dequant_reference(lin, x, ref).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [lambda: calibrated_conv(stride=2, groups=2),
                                  lambda: calibrated_conv(cin=4, cout=4, groups=4)])
def test_approx_gradients_equal_quant_gradients(make):
    conv, x = make()
    conv.set_multiplier("marlin:200")
    grads = {}
    for mode in ("quant", "approx"):
        set_mode(conv, mode)
        conv.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = conv(xi)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads[mode] = (conv.weight.grad.clone(), conv.bias.grad.clone(), xi.grad.clone(), out)
    for a, b in zip(grads["quant"][:3], grads["approx"][:3]):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.allclose(grads["quant"][3], grads["approx"][3])  # forward differs


def test_noise_mode_adds_scaled_noise_in_training_only_and_trains_sigma():
    conv, x = calibrated_conv()
    with torch.no_grad():
        conv.sigma.fill_(-0.3)  # sign ignored
    set_mode(conv, "quant")
    clean = conv(x).detach()
    set_mode(conv, "noise")
    assert torch.equal(conv(x), clean)  # eval: no noise
    conv.train()
    conv.input_quant.observe = False
    torch.manual_seed(0)
    noisy = conv(x)
    y0 = clean - conv.bias.detach().view(1, -1, 1, 1)
    ratio = float((noisy.detach() - clean).std() / y0.std())
    assert ratio == pytest.approx(0.3, rel=0.1)
    noisy.pow(2).sum().backward()
    assert conv.sigma.grad is not None and conv.sigma.grad != 0


def test_from_float_to_float_keep_torch_parameters_and_outputs():
    torch.manual_seed(0)
    ref = nn.Conv2d(3, 5, 3, 2, 1, groups=1)
    conv = ApproxConv2d.from_float(ref)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(conv(x), ref(x), atol=0, rtol=0)
    assert {"weight", "bias"} <= set(conv.state_dict())
    back = conv.to_float()
    assert type(back) is nn.Conv2d
    torch.testing.assert_close(back(x), ref(x), atol=0, rtol=0)
    lin = nn.Linear(6, 2)
    al = ApproxLinear.from_float(lin)
    xl = torch.randn(4, 6)
    torch.testing.assert_close(al(xl), lin(xl), atol=0, rtol=0)
    torch.testing.assert_close(al.to_float()(xl), lin(xl), atol=0, rtol=0)
    with pytest.raises(TypeError, match="nn.Conv2d"):
        ApproxConv2d.from_float(lin)


def test_checkpoint_carries_mode_spec_and_sigma_and_repr_shows_them():
    conv, x = calibrated_conv()
    conv.set_multiplier("marlin:17")
    with torch.no_grad():
        conv.sigma.fill_(0.42)
    set_mode(conv, "approx")
    fresh = ApproxConv2d(4, 6, 3, 1, 1)
    fresh.load_state_dict(conv.state_dict())
    assert fresh.mode is Mode.APPROX and fresh.spec == "marlin:17"
    assert float(fresh.sigma.detach()) == pytest.approx(0.42)
    torch.testing.assert_close(fresh(x), conv(x), atol=0, rtol=0)
    text = repr(fresh)
    for part in ("spec=marlin:17", "sigma=0.42", "mode=approx", "engine=agn.sim["):
        assert part in text


def test_macs_and_fan_in():
    conv = ApproxConv2d(8, 12, 3, stride=2, padding=1, groups=4)
    assert conv.fan_in == 2 * 9
    assert conv.macs((1, 8, 15, 15)) == 12 * 18 * 8 * 8
    lin = ApproxLinear(216, 10)
    assert lin.fan_in == 216 and lin.macs((7, 216)) == 2160


def test_approx_mode_rejects_dilation():
    conv = ApproxConv2d(2, 2, 3, dilation=2)
    conv.train()
    conv(torch.randn(1, 2, 8, 8))
    with pytest.raises(LayerError, match="dilation"):
        conv.set_mode("approx")
    with pytest.raises(ValueError, match="'fast'"):
        conv.set_mode("fast")


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(ApproxConv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                                  nn.ReLU())
        self.head = ApproxLinear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


def test_approximate_validates_everything_before_touching_the_model():
    model = Tiny()
    with pytest.raises(AssignmentError) as err:
        approximate_(model, {"body.0": "marlin:3", "head.x": "exact"})
    assert "missing ['head']" in str(err.value) and "unknown ['head.x']" in str(err.value)
    with pytest.raises(AssignmentError, match="layer 'head'.*nope"):
        approximate_(model, {"body.0": "marlin:3", "head": "nope:1"})
    assert [m.spec for _, m in approx_layers(model)] == ["exact", "exact"]
    approximate_(model, {"layers": [{"name": "body.0", "multiplier": "marlin:3"},
                                    {"name": "head", "multiplier": "evo:mul8s_1L2N"}]})
    assert [m.spec for _, m in approx_layers(model)] == ["marlin:3", "evo:mul8s_1L2N"]
    assert model.head.input_quant.int_range() == (0, 127)   # signed circuit: 0..127
    assert model.body[0].input_quant.int_range() == (0, 255)


def test_approximate_takes_an_assignment_a_file_of_any_version_and_multiplier_values(tmp_path):
    model = Tiny()
    approximate_(model, {"body.0": hwlib.get("marlin:5"), "head": "exact"})
    assert [m.spec for _, m in approx_layers(model)] == ["marlin:5", "exact"]
    asg = hwlib.Assignment.from_mapping({"body.0": "marlin:6", "head": "marlin:7"})
    approximate_(model, asg)
    assert [m.spec for _, m in approx_layers(model)] == ["marlin:6", "marlin:7"]
    old_chosen = tmp_path / "chosen_assignment.json"  # written before the format had a version
    old_chosen.write_text('{"energy": 0.9, "genome": [1, 2], "layers": [{"name": "body.0", '
                          '"multiplier": "marlin:8"}, {"name": "head", "multiplier": "exact"}]}')
    approximate_(model, old_chosen)
    assert [m.spec for _, m in approx_layers(model)] == ["marlin:8", "exact"]
    approximate_(model, hwlib.write_assignment(tmp_path / "new.json", asg))
    assert [m.spec for _, m in approx_layers(model)] == ["marlin:6", "marlin:7"]
    from agn.layers import restrict_activations_

    assert restrict_activations_(model, hwlib.Catalog.build("evo:mul8s_*")) == (0, 127)


def test_signed_circuit_layer_is_bit_exact_with_narrowed_activations():
    model = Tiny()
    x = torch.randn(4, 1, 6, 6)
    calibrate(model, [x], 1)
    approximate_(model, {"body.0": "evo:mul8s_1L2N", "head": "marlin:9"})
    set_mode(model, "approx")
    model.eval()
    conv = model.body[0]
    x_q, w_q, zp = conv.integer_operands(x)
    assert int(x_q.max()) <= 127
    ref = ref_conv_acc(x_q, w_q, "evo:mul8s_1L2N", conv.stride, conv.padding, 1, zp)
    np.testing.assert_array_equal(conv._approx_acc(x_q, w_q, zp).numpy(), ref)


def test_set_mode_needs_calibration_and_fold_bn_preserves_outputs():
    model = Tiny()
    with pytest.raises(ValueError, match="calibration"):
        set_mode(model, "quant")
    x = torch.randn(8, 1, 6, 6)
    model.train()
    for _ in range(3):
        model(x)  # BN running statistics
    model.eval()
    before = model(x)
    assert fold_bn(model) == 1 and isinstance(model.body[1], nn.Identity)
    assert model.body[0].bias is not None
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)
    calibrate(model, [x], 1)
    set_mode(model, Mode.QUANT)
    assert all(m.mode is Mode.QUANT for _, m in approx_layers(model))
    torch.testing.assert_close(model(x), before, atol=0.05, rtol=0.05)


def test_integer_operands_are_what_the_engine_receives(monkeypatch):
    conv, x = calibrated_conv()
    conv.set_multiplier("marlin:5")
    set_mode(conv, "approx")
    seen = {}
    import agn.sim

    real = agn.sim.approx_conv2d

    def spy(x_q, w_q, m, stride, padding, groups, zp):
        seen.update(x_q=x_q, w_q=w_q, zp=zp)
        return real(x_q, w_q, m, stride, padding, groups, zp)

    monkeypatch.setattr(agn.sim, "approx_conv2d", spy)
    conv(x)
    x_q, w_q, zp = conv.integer_operands(x)
    assert torch.equal(seen["x_q"], x_q) and torch.equal(seen["w_q"], w_q) and seen["zp"] == zp
    assert x_q.shape == x.shape and w_q.shape == conv.weight.shape


def test_integer_activations_are_not_shifted_by_128():
    """Defect (docs/noise_method.md): unsigned activations shifted by 128 against the table."""
    conv = ApproxConv2d(1, 1, 1)
    conv.train()
    conv(torch.tensor([-1.0, 0.0, 3.0]).view(1, 1, 3, 1))  # range [-1, 3] -> scale 4/255
    x = torch.tensor([-1.0, 0.0, 3.0, 1.0]).view(1, 1, 4, 1)
    x_q, _, zp = conv.integer_operands(x)
    assert zp == 64  # round(1 / (4/255)) = round(63.75)
    assert x_q.flatten().tolist() == [0, 64, 255, 128]


def test_restrict_activations_narrows_every_input_to_what_the_whole_catalog_accepts():
    from agn.layers import restrict_activations_
    from agn.models import build_model

    model = build_model("lenet5", 1, 8, 10)
    assert restrict_activations_(model, "marlin:*") == (0, 255)
    assert {layer.input_quant.int_range() for _, layer in approx_layers(model)} == {(0, 255)}
    assert restrict_activations_(model, "marlin:*,evo:mul8s_1L2N") == (0, 127)
    assert {layer.input_quant.int_range() for _, layer in approx_layers(model)} == {(0, 127)}
    with pytest.raises(AssignmentError, match="catalog 'nosuch:1'"):
        restrict_activations_(model, "nosuch:1")


def test_fold_bn_refuses_a_batchnorm_it_cannot_place_and_names_prepare():
    class Attributes(nn.Module):  # conv -> bn as attributes: only the call order pairs them
        def __init__(self):
            super().__init__()
            self.conv, self.bn = ApproxConv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)

        def forward(self, x):
            return self.bn(self.conv(x))

    with pytest.raises(ValueError, match=r"BatchNorm \['bn'\].*agn.prepare\(model, example"):
        fold_bn(Attributes())
    lin = nn.Sequential(ApproxLinear(6, 4), nn.BatchNorm1d(4))
    assert fold_bn(lin) == 1 and isinstance(lin[1], nn.Identity)
    assert fold_bn(lin) == 0  # nothing left to fold
