"""agn.stats: receptive fields, exact output moments, seeded sampling and measured errors,
against per-element loops."""
import numpy as np
import pytest
import torch
from torch import nn

from agn.stats import (
    collect_stats,
    measure_errors,
    receptive_fields,
    sample_batches,
    write_operand_stats,
)
from errormodels import StatsError, histogram, load_stats
from hwlib import INT8, UINT8


class FakeConv(nn.Conv2d):
    """Conv whose inputs are already integers (stored as float); implements the operand API."""

    def __init__(self, *args, zero_point=0, **kw):
        super().__init__(*args, bias=False, **kw)
        g = torch.Generator().manual_seed(sum(self.weight.shape))
        self.weight.data = torch.randint(-128, 128, self.weight.shape, generator=g).float()
        self.zp = zero_point

    def integer_operands(self, x):
        return x.to(torch.uint8), self.weight.to(torch.int8), self.zp

    def forward(self, x):
        return super().forward(x - self.zp).clamp(0, 255).round() % 256


class FakeLinear(nn.Linear):
    def __init__(self, n_in, n_out):
        super().__init__(n_in, n_out, bias=False)
        self.weight.data = torch.randint(-128, 128, self.weight.shape,
                                         generator=torch.Generator().manual_seed(3)).float()

    def integer_operands(self, x):
        return x.to(torch.uint8), self.weight.to(torch.int8), 0


class FakeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = FakeConv(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2),
                             groups=2, zero_point=17)
        self.fc = FakeLinear(6 * 4 * 8, 5)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


def _fields_by_loop(conv, x, zp):
    """Padded receptive fields one output element at a time, in (n, group, oy, ox) order."""
    (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
    (ph, pw), (dh, dw) = conv.padding, conv.dilation
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), zp, np.int64)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cg = c // conv.groups
    rows = []
    for b in range(n):
        for g in range(conv.groups):
            for oy in range(ho):
                for ox in range(wo):
                    rows.append([xp[b, g * cg + ci, oy * sh + ky * dh, ox * sw + kx * dw]
                                 for ci in range(cg) for ky in range(kh) for kx in range(kw)])
    return np.array(rows)


def _inputs(seed, n=3):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 4, 7, 6), generator=gen).float()


def test_receptive_fields_match_loop_with_zero_point_padding_groups_stride_dilation():
    conv = FakeConv(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2,
                    zero_point=17)
    x = _inputs(0)
    got = receptive_fields(conv, x.to(torch.uint8), 17).numpy()
    np.testing.assert_array_equal(got, _fields_by_loop(conv, x.numpy().astype(np.int64), 17))
    # the fields dotted with the weights give the exact output (group g uses weights of group g)
    w = conv.weight.detach().numpy().astype(np.int64).reshape(2, 3, -1)      # (G, Cout_g, fan_in)
    f = got.reshape(3, 2, -1, got.shape[1]) - 17                             # (B, G, L, fan_in)
    y = np.einsum("bglf,gof->bgol", f, w).reshape(3, 6, -1)
    ref = torch.nn.functional.conv2d(x.double() - 17, conv.weight.detach().double(), None,
                                     conv.stride, conv.padding, conv.dilation, conv.groups)
    np.testing.assert_array_equal(y, ref.flatten(2).numpy())


def test_collect_stats_against_full_enumeration():
    net = FakeNet()
    batches = [_inputs(s) for s in (1, 2, 3)]
    stats = collect_stats(net, batches, n_fields=20, seed=5)
    assert [s.name for s in stats] == ["conv", "fc"]
    conv, fc = stats
    all_x = torch.cat(batches)
    full = receptive_fields(net.conv, all_x.to(torch.uint8), 17).numpy()
    y = torch.nn.functional.conv2d(all_x.double() - 17, net.conv.weight.detach().double(), None,
                                   net.conv.stride, net.conv.padding, net.conv.dilation, 2)
    assert conv.fan_in == 2 * 3 * 2 and conv.n_fields == 20
    assert conv.zero_point == 17 and conv.seed == 5
    assert conv.multiplications == 6 * 4 * 8 * 12
    assert conv.out_std == pytest.approx(float(y.std(unbiased=False)), rel=1e-12)
    assert conv.out_mean == pytest.approx(float(y.mean()), rel=1e-12)
    np.testing.assert_array_equal(conv.weight_hist,
                                  histogram(net.conv.weight.detach().numpy().astype(int), INT8))
    # every sampled histogram is the histogram of one real field (zero-point padding included)
    full_h = {tuple(h) for h in histogram(full, UINT8, axis=-1)}
    assert all(tuple(h) in full_h for h in conv.field_hists)
    assert any(h[17] > 0 for h in conv.field_hists)
    fc_in = net.conv(all_x).detach().flatten(1)
    assert fc.fan_in == 192 and fc.multiplications == 192 * 5
    y_fc = fc_in.double() @ net.fc.weight.detach().double().T
    assert fc.out_std == pytest.approx(float(y_fc.std(unbiased=False)))


def test_sampling_is_seeded_and_model_state_restored():
    net = FakeNet().train()
    batches = [_inputs(s) for s in (1, 2)]
    a = collect_stats(net, batches, n_fields=8, seed=1)
    b = collect_stats(net, batches, n_fields=8, seed=1)
    c = collect_stats(net, batches, n_fields=8, seed=2)
    np.testing.assert_array_equal(a[0].field_hists, b[0].field_hists)
    assert not np.array_equal(a[0].field_hists, c[0].field_hists)
    assert net.training
    assert not net.conv._forward_pre_hooks and not net.fc._forward_pre_hooks
    assert len(collect_stats(net, iter(batches * 3), n_fields=4, max_batches=1)) == 2


def test_errors_are_clear(tmp_path):
    with pytest.raises(StatsError, match="no approximable layer"):
        collect_stats(nn.Sequential(nn.ReLU()), [torch.zeros(1, 3)])
    with pytest.raises(StatsError, match="no batch"):
        collect_stats(FakeNet(), [])
    with pytest.raises(StatsError, match="n_fields must be >= 1"):
        collect_stats(FakeNet(), [_inputs(0)], n_fields=0)


def test_write_and_sample_batches(tmp_path):
    data = [(_inputs(i, 1)[0], i) for i in range(10)]
    xs = list(sample_batches(data, 7, batch_size=3, seed=4))
    assert [x.shape[0] for x in xs] == [3, 3, 1]
    again = list(sample_batches(data, 7, batch_size=3, seed=4))
    assert all(torch.equal(p, q) for p, q in zip(xs, again))
    path = write_operand_stats(tmp_path, FakeNet(), xs, n_fields=5, seed=9)
    back = load_stats(path)
    assert [s.name for s in back] == ["conv", "fc"] and back[0].seed == 9


def _lenet():
    from agn.layers import approx_layers, calibrate, set_mode
    from agn.models import build_model

    torch.manual_seed(0)
    model = build_model("lenet5", in_channels=1, input_size=16)
    g = torch.Generator().manual_seed(0)
    batches = [torch.rand(8, 1, 16, 16, generator=g) for _ in range(3)]
    calibrate(model, batches, 3)
    set_mode(model, "quant")
    return model, batches, approx_layers(model)


def test_real_lenet5_layers():
    model, batches, layers = _lenet()
    stats = collect_stats(model, batches, n_fields=16, seed=0)
    assert [s.name for s in stats] == [n for n, _ in layers]
    for st, (_, layer) in zip(stats, layers):
        assert st.fan_in == layer.fan_in
        captured: dict[str, torch.Tensor] = {}
        h = layer.register_forward_pre_hook(
            lambda m, a, captured=captured: captured.setdefault("x", a[0]))
        model.eval()
        with torch.no_grad():
            model(batches[0])
        h.remove()
        assert st.multiplications == layer.macs(captured["x"].shape)
        x_q, w_q, zp = layer.integer_operands(captured["x"])
        assert zp == st.zero_point
        np.testing.assert_array_equal(
            st.weight_hist, histogram(w_q.numpy().astype(np.int64), INT8))
        assert st.out_std > 0


class FakeNetD1(nn.Module):
    """Dilation-1 variant (the engine's geometry) with a zero point and groups."""

    def __init__(self):
        super().__init__()
        self.conv = FakeConv(4, 6, (3, 2), stride=(2, 1), padding=(1, 1), groups=2, zero_point=17)
        self.fc = FakeLinear(6 * 4 * 7, 5)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


def test_measure_errors_matches_per_element_table_lookup():
    import hwlib
    from agn.stats import measure_errors

    net = FakeNetD1()
    batches = [_inputs(s, 2) for s in (7, 8)]
    specs = ["marlin:0", "marlin:15", "marlin:255"]
    got = {(r.layer, r.multiplier): r for r in measure_errors(net, batches, specs)}
    x = torch.cat(batches)
    fields = receptive_fields(net.conv, x.to(torch.uint8), 17).numpy().reshape(4, 2, -1, 12)
    w = net.conv.weight.detach().numpy().astype(np.int64).reshape(2, 3, 12)
    fc_in = net.conv(x).detach().numpy().reshape(4, -1).astype(np.int64)
    wf = net.fc.weight.detach().numpy().astype(np.int64)
    for spec in specs:
        err = hwlib.get(spec).error_table()
        e_conv = err[fields[:, :, :, None, :], w[None, :, None, :, :] + 128].sum(-1)
        e_fc = err[fc_in[:, None, :], wf[None, :, :] + 128].sum(-1)
        for name, e in (("conv", e_conv), ("fc", e_fc)):
            r = got[(name, spec)]
            assert r.count == e.size
            assert r.mean == pytest.approx(e.mean(), rel=1e-9, abs=1e-9)
            assert r.std == pytest.approx(e.std(), rel=1e-9, abs=1e-9)
    assert got[("conv", "marlin:0")].std == 0 and got[("conv", "marlin:255")].std > 0


def test_statistics_move_model_and_batches_to_the_cpu_themselves():
    """No GPU here: the devices checked are the CPU and the meta device (tensors without data);
    a GPU model takes the same path as the meta one up to the copy to the CPU."""
    net = FakeNet()
    with pytest.raises(StatsError, match="meta device .no data.; load its weights"):
        collect_stats(FakeNet().to("meta"), [_inputs(1)])
    with pytest.raises(StatsError, match="a batch on the meta device"):
        collect_stats(net, [_inputs(1).to("meta")])
    with pytest.raises(StatsError, match="meta device"):
        measure_errors(FakeNet().to("meta"), [_inputs(1)], ["exact"])
    assert len(collect_stats(net, [_inputs(1)], n_fields=4)) == 2


def test_sample_prediction_on_every_field_is_the_measured_error():
    """With every receptive field kept (grouped conv with a zero point, and a linear layer),
    Method.SAMPLE's mean and std are measure_errors' to rounding."""
    from errormodels import ErrorCatalog, predict

    net = FakeNetD1()
    batches = [_inputs(s, 2) for s in (7, 8)]
    specs = ["marlin:15", "marlin:63", "marlin:255"]
    stats = collect_stats(net, batches, n_fields=10_000, seed=0)
    assert stats[0].n_fields == 4 * 2 * 4 * 7 and stats[0].operands.groups == 2
    got = {(r.layer, r.multiplier): r for r in measure_errors(net, batches, specs)}
    pred = predict(stats, ErrorCatalog.build(specs), "sample")
    for i, st in enumerate(stats):
        for j, spec in enumerate(specs):
            r = got[(st.name, spec)]
            assert pred.mean[i, j] == pytest.approx(r.mean, rel=1e-9, abs=1e-9)
            assert pred.std[i, j] == pytest.approx(r.std, rel=1e-9, abs=1e-9)
