"""A user's plain PyTorch model named by an import string goes through the training stages."""
from __future__ import annotations

import textwrap

import pytest
import torch

import deploy
from agn.cli import main
from agn.config import ConfigError, TrainConfig, check_train
from agn.layers import approx_layers
from agn.run import export_run, load_stage_model

MODULE = '''
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self, in_channels, input_size, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * (input_size // 2) ** 2, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        return self.fc(x.view(x.size(0), -1))
'''


@pytest.fixture(name="user_module")
def _user_module(tmp_path, monkeypatch):
    (tmp_path / "usermodels.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "usermodels:Net"


def test_train_stages_prepare_an_import_string_model_and_export_it(tmp_path, user_module):
    run = tmp_path / "run"
    argv = ["train", "-c", "digits_lenet5", "--run-dir", str(run), "--model", user_module,
            "--float_stage.epochs", "1", "--qat.epochs", "1", "--noise_stage.epochs", "1",
            "--limit_train_batches", "3", "--limit_val_batches", "1", "--progress_bar", "false",
            "--threads", "1", "--accelerator", "cpu"]
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        assert main(argv) == 0
    finally:
        torch.use_deterministic_algorithms(deterministic)
    model = load_stage_model("noise", run)
    assert [n for n, _ in approx_layers(model)] == ["conv1", "fc"]  # the user's names
    net = deploy.load(export_run(run))
    assert [layer.name for layer in net.layers] == ["conv1", "fc"]
    assert (run / "sigmas.json").exists()


def test_an_import_string_that_does_not_resolve_is_a_config_error():
    with pytest.raises(ConfigError, match="train.model.*cannot import 'Nope' from 'agn.models'"):
        check_train(TrainConfig(model="agn.models:Nope"), "train")
