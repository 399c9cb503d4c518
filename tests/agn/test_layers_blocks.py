"""Approximable layers holding block-wise multipliers: bit-exact, checkpointed, assignable."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from agn.layers import ApproxConv2d, ApproxLinear, AssignmentError, Mode, approximate_, set_mode
from deploy.reference.blocks import conv2d_blocks, linear_blocks
from hwlib.blocks import Block

torch.set_num_threads(1)
KERNELS = (Block(out=(0, 3), inp=(0, 2), multiplier="marlin:40"),
           Block(out=(0, 3), inp=(2, 4), multiplier="blocktest:5"),
           Block(out=(3, 6), inp=(0, 2), multiplier="exact"),
           Block(out=(3, 6), inp=(2, 4), multiplier="marlin:40"))


def _calibrated(layer, x):
    layer.train()
    layer(x)
    layer.eval()
    return layer


def test_conv_and_linear_with_blocks_are_bit_exact_and_checkpointed():
    torch.manual_seed(0)
    conv = _calibrated(ApproxConv2d(4, 6, 3, 1, 1), torch.randn(2, 4, 7, 7) + 0.5)
    conv.set_multiplier([b.to_json() for b in KERNELS])
    assert conv.spec == KERNELS and "6 blocks" not in repr(conv)
    x = torch.randn(2, 4, 7, 7) + 0.5
    x_q, w_q, zp = conv.integer_operands(x)
    want = conv2d_blocks(x_q.numpy(), w_q.numpy(), np.zeros(6, np.int64), KERNELS, (1, 1),
                         (1, 1, 1, 1), 1, zp)
    np.testing.assert_array_equal(conv._approx_acc(x_q, w_q, zp).numpy(), want)
    set_mode(conv, Mode.APPROX)
    fresh = ApproxConv2d(4, 6, 3, 1, 1)
    fresh.load_state_dict(conv.state_dict())
    fresh.eval()
    assert fresh.spec == KERNELS and "4 blocks of marlin:40/blocktest:5/exact" in repr(fresh)
    torch.testing.assert_close(fresh(x), conv(x), atol=0, rtol=0)

    lin = _calibrated(ApproxLinear(8, 4), torch.randn(5, 8))
    groups = (Block(out=(0, 2), multiplier="blocktest:6"), Block(out=(2, 4), multiplier="exact"))
    lin.set_multiplier(groups)
    xl = torch.randn(5, 8)
    xq, wq, zpl = lin.integer_operands(xl)
    np.testing.assert_array_equal(lin._approx_acc(xq, wq, zpl).numpy(),
                                  linear_blocks(xq.numpy(), wq.numpy(), np.zeros(4), groups))


def test_approximate_gives_grouped_layers_their_blocks_after_checking_all():
    model = nn.Sequential(ApproxConv2d(4, 6, 3, padding=1), nn.Flatten(), ApproxLinear(6 * 25, 3))
    model(torch.randn(1, 4, 5, 5))
    bad = {"version": 2, "layers": [
        {"name": "0", "groups": [{"out": [0, 4], "multiplier": "marlin:3"}]},
        {"name": "2", "multiplier": "marlin:9"}]}
    with pytest.raises(AssignmentError, match="layer '0' groups.*'out' group sizes"):
        approximate_(model, bad)
    assert model[0].spec == "exact" and model[2].spec == "exact"
    approximate_(model, {"0": [Block(out=(0, 3), multiplier="marlin:3"),
                               Block(out=(3, 6), multiplier="roup:r1p1")], "2": "marlin:9"})
    assert model[0].input_quant.int_range() == (0, 127)  # narrowed for the signed ROUP block
    assert model[0].w_qmax == 127 and model[2].spec == "marlin:9"


def test_a_model_with_grouped_layers_exports_them_and_predicts_like_the_integer_network():
    from agn.export import export
    from agn.intsim import predict
    from agn.layers import approx_layers, calibrate, fold_bn
    from agn.models import build_model
    from hwlib.blocks import from_channel_specs

    torch.manual_seed(0)
    m = build_model("lenet5", 1, 8)
    fold_bn(m)
    x = torch.randn(64, 1, 8, 8)
    calibrate(m, [x], 1)
    rng = np.random.default_rng(0)
    asg = {}
    for name, layer in approx_layers(m):
        specs = [f"marlin:{rng.integers(256)}" for _ in range(layer.weight.shape[0])]
        asg[name] = from_channel_specs(specs)
    approximate_(m, asg)
    set_mode(m, "approx")
    m.eval()
    net = export(m, (1, 8, 8))
    assert net.multipliers() == {n: tuple(b) for n, b in asg.items()}
    xq = m.quant_in.to_int(x).to(torch.uint8).numpy()
    with torch.no_grad():
        approx_pred = m(x).argmax(1).numpy()
    assert np.mean(predict(net, xq) == approx_pred) >= 0.95
