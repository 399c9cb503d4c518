"""Per-(channel, input group) block error prediction and kernel-granularity matching."""
from __future__ import annotations

import numpy as np
import pytest

from errormodels import ErrorCatalog, LayerSigma, OperandStats, StatsError
from errormodels.blocks import (
    BlockOperands,
    kernel_sensitivity_order,
    load_block_operands,
    match_kernels,
    predict_blocks,
    save_block_operands,
)
from errormodels.channels import predict_channels
from hwlib.blocks import check_blocks

CAT = ["exact", "marlin:0", "marlin:40", "marlin:120", "marlin:255"]


def _operands(seed: int, channels: int = 4, inputs: int = 6, taps: int = 4):
    rng = np.random.default_rng(seed)
    fields = rng.integers(0, 256, (20, inputs, taps)) * (rng.random((20, inputs, taps)) > 0.3)
    scale = np.linspace(2, 120, inputs).astype(int)[None, :, None]
    weights = np.clip(rng.normal(0, 1, (channels, inputs, taps)) * scale, -127, 127)
    weights[:, :2] = 0                                     # input channels 0, 1: exact products
    return weights.astype(np.int64), fields


def _stats(weights: np.ndarray, fields: np.ndarray) -> OperandStats:
    flat = fields.reshape(len(fields), -1)
    return OperandStats.from_operands("conv", weights, flat, multiplications=flat.shape[1] * 50,
                                      out_std=2000.0, out_mean=0.0, seed=0)


def test_one_input_group_is_the_per_channel_formula_and_blocks_add_up_per_channel():
    weights, fields = _operands(0)
    cat = ErrorCatalog.build(CAT)
    ops = BlockOperands("conv", weights, fields)
    one = predict_blocks(ops, cat, in_group=6)
    per = predict_channels(_stats(weights, fields), cat)
    for m in range(len(CAT)):
        mean, std = one.channel_error(np.full((4, 1), m))
        np.testing.assert_allclose(std, per.std[:, m], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(mean, per.mean[:, m], rtol=1e-9, atol=1e-9)
    blocks = predict_blocks(ops, cat, in_group=2)
    assert blocks.within.shape == (4, 3, len(CAT)) and blocks.field_means.shape[:3] == (20, 4, 3)
    # means add over blocks: the channel's mean is the sum of its blocks' means
    m = CAT.index("marlin:120")
    mean, _ = blocks.channel_error(np.full((4, 3), m))
    np.testing.assert_allclose(mean, blocks.field_means[..., m].sum(axis=2).mean(axis=0))
    # (not the per-channel mean: each input group pairs its own activations with its weights)
    # the input group of zero weights is the least sensitive one
    assert (blocks.block_std[:, 0] == 0).all() and (blocks.block_std[:, 1:, 2:] > 0).all()
    with pytest.raises(StatsError, match="group size 4 does not divide the 6 input channels"):
        predict_blocks(ops, cat, in_group=4)


def test_measured_block_sums_follow_the_predicted_mean_and_std():
    """The prediction against the errors of the actual sums, weights drawn per channel."""
    rng = np.random.default_rng(3)
    weights, fields = _operands(3, channels=1, inputs=4, taps=9)
    weights[:, :2] = -weights[:, 2:]                           # no zero block here
    cat = ErrorCatalog.build(["exact", "marlin:255", "marlin:120"])
    pred = predict_blocks(BlockOperands("conv", weights, fields), cat, in_group=2)
    choice = np.array([[1, 2]])                              # two blocks, two multipliers
    mean, std = pred.channel_error(choice)
    errors = cat.errors.astype(np.int64)                     # approx(x, w) - x * w
    errs = []
    for _ in range(400):                          # weights drawn i.i.d. from each block's kernels
        w = np.stack([rng.choice(weights[0, 2 * g:2 * g + 2].ravel(), 18) for g in range(2)])
        for f in fields:
            x = f.reshape(2, -1)
            errs.append(sum(errors[choice[0, g]][x[g], w[g] + 128].sum() for g in range(2)))
    assert np.mean(errs) == pytest.approx(mean[0], rel=0.1, abs=std[0] * 0.1)
    assert np.std(errs) == pytest.approx(std[0], rel=0.15)


def test_kernel_matching_keeps_every_channel_within_tolerance_and_mixes_inside_a_filter():
    weights, fields = _operands(1, channels=4, inputs=6)
    cat = ErrorCatalog.build(CAT)
    st = _stats(weights, fields)
    ops = {"conv": BlockOperands("conv", weights, fields)}
    per = predict_channels(st, cat)
    tol = float(np.median(per.std[:, CAT.index("marlin:120")]))
    sig = [LayerSigma(name="conv", sigma=tol / st.out_std)]
    asg = match_kernels(sig, [st], ops, cat, group=2, in_group=2)
    (layer,) = asg.layers
    check_blocks(layer.groups, 4, 6)
    assert all(b.inp is not None for b in layer.groups) and len(layer.groups) == 2 * 3
    assert asg.details == {"granularity": "kernel", "group": 2, "in_group": 2}
    pred = predict_blocks(ops["conv"], cat, 2)
    choice = np.array([[cat.specs.index(b.multiplier) for b in layer.groups]]).reshape(2, 3)
    _, std = pred.channel_error(np.repeat(choice, 2, axis=0))
    assert (std <= layer.tolerance * (1 + 1e-12)).all()
    assert any(len(set(row)) > 1 for row in choice)          # a filter mixes multipliers
    power = np.asarray(cat.relative_power)[choice]
    assert asg.energy == pytest.approx(power.mean())
    # cheaper than filter granularity at the same tolerance: that picks per filter group
    from errormodels.channels import match_filters

    assert asg.energy <= match_filters(sig, [st], cat, group=2).energy + 1e-12
    order = kernel_sensitivity_order(ops["conv"], cat, group=2, in_group=2)
    assert sorted(order) == list(range(6)) and order[0] % 3 == 0   # input group 0 first


def test_block_operands_file_round_trips(tmp_path):
    weights, fields = _operands(2)
    ops = BlockOperands.from_operands("a", weights.reshape(4, 6, 2, 2), fields.reshape(20, -1))
    path = save_block_operands(tmp_path / "b.npz", [ops])
    back = load_block_operands(path)["a"]
    assert np.array_equal(back.weights, weights) and np.array_equal(back.fields, fields)
    with pytest.raises(StatsError, match="no file"):
        load_block_operands(tmp_path / "missing.npz")
