"""deploy.encode_inputs on an exported network equals the torch input quantizer bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import deploy
from agn.data import build_datamodule
from agn.export import ExportError, export
from agn.intsim import integer_split
from agn.layers import approx_layers, approximate_, calibrate, fold_bn, set_mode
from agn.models import build_model


@pytest.fixture(scope="module")
def digits():
    dm = build_datamodule("digits", seed=0)
    dm.setup()
    return dm


def _lenet(dm, narrow: bool = False):
    torch.manual_seed(0)
    m = build_model("lenet5", dm.in_channels, dm.input_size)
    fold_bn(m)
    x = dm.normalize(dm.split("train").tensors[0][:256])
    if narrow:  # a signed catalog circuit first: the input codes are limited to 0..127
        names = [n for n, _ in approx_layers(m)]
        approximate_(m, {n: "evo:mul8s_1L2N" if i == 0 else "marlin:7"
                         for i, n in enumerate(names)})
    calibrate(m, [x], 1)
    set_mode(m, "approx" if narrow else "quant")
    return m.eval()


def _edges(net: deploy.Network, rng: np.random.Generator) -> np.ndarray:
    """Images at and next to every code boundary (k + 1/2 steps), far outside the range, and at
    the mean, plus uniform noise over twice the data range."""
    inp = net.input
    mean, std, scale = (np.float32(inp.mean[0]), np.float32(inp.std[0]), np.float32(inp.scale))
    k = np.arange(-inp.zero_point - 3, 256 - inp.zero_point + 3, dtype=np.float32)
    tie = (k + np.float32(0.5)) * scale * std + mean
    near = np.concatenate([tie, np.nextafter(tie, np.float32(np.inf)),
                           np.nextafter(tie, np.float32(-np.inf)), k * scale * std + mean,
                           np.array([mean, -1e30, 1e30, 0.0, 1.0], np.float32)])
    noise = rng.uniform(-1.0, 2.0, 64 * 64).astype(np.float32)
    flat = np.concatenate([near, noise])
    flat = np.concatenate([flat, np.zeros(-len(flat) % 64, np.float32)])
    return flat.reshape(-1, 1, 8, 8)


@pytest.mark.parametrize("narrow", [False, True])
def test_encode_inputs_equals_the_torch_input_quantizer(digits, narrow, tmp_path) -> None:
    m = _lenet(digits, narrow)
    net = export(m, digits.input_shape, "lenet5", mean=digits.mean, std=digits.std)
    assert (net.input.lo, net.input.hi) == ((0, 127) if narrow else (0, 255))
    xq, _ = integer_split(m, digits, "test")
    assert np.array_equal(deploy.encode_inputs(net, digits.split("test").tensors[0].numpy()), xq)
    x = _edges(net, np.random.default_rng(1))
    with torch.no_grad():
        torch_codes = m.quant_in.to_int(digits.normalize(torch.from_numpy(x)))
    ours = deploy.encode_inputs(net, x)
    assert np.array_equal(ours, torch_codes.to(torch.uint8).numpy())
    assert ours.min() == net.input.lo and ours.max() == net.input.hi
    deploy.save(net, tmp_path)
    assert np.array_equal(deploy.encode_inputs(deploy.load(tmp_path), x), ours)


def test_export_without_normalisation_cannot_encode(digits) -> None:
    m = _lenet(digits)
    net = export(m, digits.input_shape)
    assert net.input.mean is None
    with pytest.raises(deploy.IRError, match="records no float normalisation"):
        deploy.encode_inputs(net, np.zeros((1, 1, 8, 8)))
    with pytest.raises(ExportError, match="both mean and std"):
        export(m, digits.input_shape, mean=digits.mean)
    with pytest.raises(ExportError, match=r"mean expected 1 values \(one per input channel\), "
                                          r"got 3"):
        export(m, digits.input_shape, mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])
