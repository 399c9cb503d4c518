"""Devices: Lightning's accelerator choice, and approximate mode refusing non-CPU tensors."""
from __future__ import annotations

import pytest
import torch

from agn.config import ConfigError, TrainConfig
from agn.layers import ApproxConv2d, LayerError
from agn.training import Stage
from agn.training.stages import accelerator


def test_approximate_mode_on_a_non_cpu_tensor_names_the_device():
    conv = ApproxConv2d(1, 2, 3, padding=1)
    conv(torch.randn(4, 1, 8, 8))  # calibrates its own input quantizer
    conv.set_mode("approx")
    with pytest.raises(LayerError, match=r"CPU only, got an input on meta.*model.cpu\(\)"):
        conv(torch.empty(4, 1, 8, 8, device="meta"))


def test_accelerator_is_lightnings_choice_and_retraining_stays_on_the_cpu():
    cfg = TrainConfig()
    assert cfg.accelerator == "auto"
    assert accelerator(cfg, Stage.QAT) == "auto" and accelerator(cfg, Stage.RETRAIN) == "cpu"
    gpu = TrainConfig(accelerator="gpu")
    assert accelerator(gpu, Stage.NOISE) == "gpu" and accelerator(gpu, Stage.RETRAIN) == "gpu"
    with pytest.raises(ConfigError, match="accelerator"):
        TrainConfig(accelerator="quantum")
