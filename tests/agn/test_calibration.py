"""Activation range estimators: max (default, unchanged), percentile and MSE-optimal."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from agn.config import ConfigError, TrainConfig
from agn.layers import set_calibration
from agn.quant import ActQuant, clip_range, fake_quant


def _heavy(n=20_000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, generator=g)) ** 3


def _mse(x, hi, levels=128):
    s = hi / (levels - 1)
    return float(((fake_quant(x, s, 0, 0, levels - 1) - x) ** 2).mean())


def test_max_is_the_default_and_unchanged():
    x = _heavy()
    q = ActQuant()
    q.update(x)
    assert q.calibration == "max" and float(q.max_val) == float(x.max())
    lo, hi = clip_range(x, x.new_tensor(0.0), x.max(), 256, "max")
    assert float(hi) == float(x.max()) and float(lo) == 0.0


def test_percentile_matches_numpy_and_mse_beats_max_on_heavy_tails():
    x = _heavy()
    _, hi_p = clip_range(x, x.new_tensor(0.0), x.max(), 128, "percentile", 99.0)
    assert float(hi_p) == pytest.approx(np.percentile(x.numpy(), 99.0), rel=1e-3)
    _, hi_m = clip_range(x, x.new_tensor(0.0), x.max(), 128, "mse")
    assert float(hi_m) < float(x.max())
    assert _mse(x, float(hi_m)) < _mse(x, float(x.max()))


def test_signed_input_range_shrinks_both_ends():
    x = torch.randn(20_000, generator=torch.Generator().manual_seed(1)) ** 3
    lo, hi = clip_range(x, x.min(), x.max(), 256, "percentile", 99.5)
    assert float(x.min()) < float(lo) < 0 < float(hi) < float(x.max())


def test_observers_follow_set_calibration_and_bad_values_are_refused():
    model = torch.nn.Sequential(ActQuant(), ActQuant())
    set_calibration(model, "mse")
    assert [q.calibration for q in model] == ["mse", "mse"]
    x = _heavy()
    model[0].update(x)
    assert float(model[0].max_val) < float(x.max())
    with pytest.raises(ValueError, match="calibration 'median'"):
        set_calibration(model, "median")
    with pytest.raises(ConfigError, match="calibration"):
        TrainConfig.from_dict({"calibration": "median"})


def test_learned_clip_keeps_the_fake_quant_values_and_learns_the_range():
    q = ActQuant()
    set_calibration(torch.nn.Sequential(q), "learned")
    assert q.learned and isinstance(q.clip, torch.nn.Parameter)
    x = _heavy(4000).view(40, 100)
    q.train()
    q.update(x)  # the warm-up: the clip starts at the maximum
    assert float(q.clip.detach()) == float(x.max())
    q.enabled.fill_(True)
    with torch.no_grad():
        q.clip.fill_(3.0)
    x.requires_grad_(True)
    y = q(x)
    scale, zp = q.qparams()
    assert float(q.max_val) == 3.0
    assert torch.equal(y, fake_quant(x, scale, zp, *q.int_range()))  # the values are kept
    y.sum().backward()
    t = x.detach() / (3.0 / 255)
    sat = torch.round(t) > 255  # PACT's 1 where the code saturates, LSQ's term below
    want = float(sat.sum()) + float(((torch.round(t) - t) / 255)[~sat].sum())
    assert float(q.clip.grad) == pytest.approx(want, rel=1e-5)
    assert torch.equal(x.grad, (torch.round(t) <= 255).float())  # the clipped STE, as before
    q.observe = False  # frozen (noise, retrain stages): the plain path, max_val kept
    with torch.no_grad():
        q.clip.fill_(2.0)
    q(x)
    assert float(q.max_val) == 3.0 and not ActQuant(unsigned=False).learned


def test_learned_range_stages_export_exactly(tmp_path):
    from agn.intsim import predict
    from agn.run import export_run, load_stage_model
    from agn.training import run_stages

    cfg = TrainConfig.from_dict({
        "model": "lenet5", "data": "digits", "calibration": "learned", "progress_bar": False,
        "catalog": "evo:mul8s_*", "limit_train_batches": 3, "limit_val_batches": 1,
        "float_stage": {"epochs": 1}, "qat": {"epochs": 1}, "noise_stage": {"epochs": 1}})
    run_stages(tmp_path, cfg, ("float", "qat", "noise"))
    model = load_stage_model("noise", tmp_path, cfg)  # the clips are in the checkpoint
    from agn.layers.model_ops import _quantizers

    clips = [q for q in _quantizers(model) if q.learned]
    # max_val (what evaluation and export read) is the clip of QAT's last training forward
    assert clips and all(float(q.max_val) > 0 and abs(float(q.clip.detach()) - float(q.max_val))
                         < 0.05 * float(q.max_val) for q in clips)
    export_run(tmp_path, "noise")
    import deploy
    from agn.data import build_datamodule

    net = deploy.load(tmp_path)
    dm = build_datamodule("digits", seed=0, batch_size=64)
    dm.setup()
    x = dm.split("test").tensors[0][:64]
    xq = model.quant_in.to_int(dm.normalize(x)).to(torch.uint8).numpy()
    with torch.no_grad():
        fq = model.eval()(dm.normalize(x)).argmax(1).numpy()
    assert np.mean(predict(net, xq) == fq) >= 0.95
