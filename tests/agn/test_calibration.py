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
