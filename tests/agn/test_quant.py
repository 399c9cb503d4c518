"""Fake quantization: integer codes, straight-through gradients, observers, weight/bias grids."""
import pytest
import torch

from agn.quant import (
    ActQuant,
    QuantError,
    dequantize,
    fake_quant,
    fake_quant_bias,
    fake_quant_weight,
    quantize,
)


def test_quantize_matches_the_integer_formula_on_random_inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10_000, generator=g) * 3
    scale, zp = torch.tensor(0.037), torch.tensor(97.0)
    q = quantize(x, scale, zp, 0, 255)
    ref = [min(255, max(0, round(v / 0.037) + 97)) for v in x.tolist()]  # Python's round: half-even
    # torch divides in float32; compare where float32 and float64 agree on the rounding
    ref32 = torch.clamp(torch.round(x / scale) + 97, 0, 255)
    assert torch.equal(q, ref32)
    mism = sum(int(a) != b for a, b in zip(q.tolist(), ref))
    assert mism <= 2  # only float32 ties may differ from the float64 reference
    assert q.min() == 0 and q.max() == 255
    assert torch.equal(quantize(dequantize(q, scale, zp), scale, zp, 0, 255), q)


def test_fake_quant_gradient_is_straight_through_inside_the_range_only():
    scale, zp = torch.tensor(0.1), torch.tensor(10.0)  # range [-1.0, 24.5]
    x = torch.tensor([-2.0, -0.96, 0.04, 3.33, 24.4, 30.0], requires_grad=True)
    y = fake_quant(x, scale, zp, 0, 255)
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 1, 1, 1, 1, 0]))
    assert torch.allclose(y.detach(), torch.tensor([-1.0, -1.0, 0.0, 3.3, 24.4, 24.5]))


def test_actquant_unsigned_has_zero_point_zero_and_affine_maps_zero_exactly():
    relu_q, aff_q = ActQuant(unsigned=True), ActQuant(unsigned=False)
    relu_q.train(), aff_q.train()
    relu_q(torch.tensor([0.0, 0.5, 6.0]))
    aff_q(torch.tensor([-1.3, 0.2, 2.9]))
    s, zp = relu_q.qparams()
    assert int(zp) == 0 and float(s) == pytest.approx(6.0 / 255)
    s, zp = aff_q.qparams()
    assert 0 < int(zp) < 255
    assert float(aff_q.to_int(torch.tensor(0.0))) == int(zp)  # padding value is exactly zp


def test_actquant_before_calibration_raises_and_range_is_checked():
    q = ActQuant()
    with pytest.raises(QuantError, match="calibration"):
        q.qparams()
    with pytest.raises(QuantError, match=r"\(0, 300\)"):
        q.set_range(0, 300)


def test_actquant_ema_and_narrowed_range():
    q = ActQuant(unsigned=True, momentum=0.5)
    q.train()
    q(torch.tensor([0.0, 4.0]))
    q(torch.tensor([0.0, 8.0]))
    assert float(q.max_val) == 6.0
    q.set_range(0, 127)
    q.enabled.fill_(True)
    q.eval()
    out_int = q.to_int(torch.tensor([10.0, 6.0, 3.0]))
    assert out_int.tolist() == [127.0, 127.0, 64.0]  # 3 / (6/127) = 63.5 -> 64 (half to even)


def test_weight_quant_is_symmetric_per_channel_and_hits_qmax():
    w = torch.tensor([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.0, -2.0]])
    w_fq, w_q, s = fake_quant_weight(w, 127)
    assert w_q.tolist() == [[64.0, -127.0, 32.0], [0.0, 0.0, 0.0], [127.0, 42.0, -85.0]]
    assert torch.allclose(s.flatten(), torch.tensor([1 / 127, 1.0, 3 / 127]))
    assert torch.equal(w_fq, w_q * s)


def test_bias_lands_on_the_accumulator_grid():
    b = torch.tensor([0.1234, -2.5], requires_grad=True)
    s_x, s_w = torch.tensor(0.01), torch.tensor([[0.5], [0.1]])
    bq = fake_quant_bias(b, s_x, s_w)
    steps = bq.detach() / (s_x * s_w.flatten())
    assert torch.allclose(steps, torch.round(steps), atol=1e-4)
    assert steps.round().tolist() == [25.0, -2500.0]
    bq.sum().backward()
    assert torch.equal(b.grad, torch.ones(2))


def test_per_tensor_weight_scale_for_the_logits_layer():
    w = torch.tensor([[0.5, -1.0], [3.0, 1.0]])
    _, w_q, s = fake_quant_weight(w, 127, per_channel=False)
    assert torch.equal(s.flatten(), torch.full((2,), 3.0 / 127))
    assert w_q.tolist() == [[21.0, -42.0], [127.0, 42.0]]
    from agn.layers import approx_layers
    from agn.models import build_model

    flags = [m.per_channel for _, m in approx_layers(build_model("lenet5", 1, 8))]
    assert flags == [True, True, True, True, False]
