"""``agn pipeline --datamodule pkg.module:Class``: the whole pipeline on a user's own
LightningDataModule (batches ``(x, y)``, not the toolkit's ImageDataModule) and plain model."""
from __future__ import annotations

import json
import shutil
import textwrap

import pytest
import torch
import yaml

import deploy
from agn.cli import main
from agn.config import ConfigError, TrainConfig, check_train
from agn.data.generic import UserDataModule, build_user_datamodule

MODULE = '''
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    templates = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (n,), generator=g)
    x = templates[y] + 0.5 * torch.randn(n, 1, 8, 8, generator=g)
    return (x - 0.5) / 0.25, y


class ToyData(pl.LightningDataModule):
    """Batches (x, y), x already normalised with mean 0.5 and std 0.25."""

    def __init__(self, batch_size=32, n_train=160):
        super().__init__()
        self.batch_size, self.n_train = batch_size, n_train
        self.num_classes = 3
        self.mean, self.std = [0.5], [0.25]

    def setup(self, stage=None):
        self.train, self.val, self.test = (TensorDataset(*_data(n, s))
                                           for n, s in ((self.n_train, 1), (48, 2), (48, 3)))

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=64)

    def test_dataloader(self):
        return DataLoader(self.test, batch_size=64)


class NoClasses(ToyData):
    def __init__(self):
        super().__init__()
        del self.num_classes
        self.std = None


def not_a_datamodule():
    return object()


class Net(nn.Module):
    def __init__(self, in_channels, input_size, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * (input_size // 2) ** 2, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        return self.fc(x.view(x.size(0), -1))
'''


@pytest.fixture(name="userdm")
def _userdm(tmp_path, monkeypatch):
    (tmp_path / "userdm.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "userdm"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")
def test_pipeline_runs_on_a_users_datamodule_named_in_the_config(tmp_path, userdm):
    config = tmp_path / "own.yaml"
    config.write_text(yaml.safe_dump({"version": 2, "train": {
        "model": f"{userdm}:Net", "datamodule": f"{userdm}:ToyData",
        "datamodule_args": {"batch_size": 16}}}))
    run = tmp_path / "run"
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        assert main(["pipeline", "--run-dir", str(run), "--config", str(config), "--quick",
                     "--epochs", "2", "1", "1", "1", "--pop", "6", "--gen", "1",
                     "--threads", "1", "--accelerator", "cpu"]) == 0
    finally:
        torch.use_deterministic_algorithms(deterministic)
    net = deploy.load(run)
    assert [layer.name for layer in net.layers] == ["conv1", "fc"]  # the user's names
    assert net.input.shape == (1, 8, 8)
    assert list(net.input.mean) == [0.5] and list(net.input.std) == [0.25]  # the user's
    assert json.loads((run / "validation.json").read_text())["ok"] is True
    assert (run / "chosen_assignment.json").exists()
    assert f"on {userdm}:ToyData" in (run / "report.md").read_text()
    status = json.loads((run / "pipeline.json").read_text())
    assert status["config"]["train"]["datamodule_args"] == {"batch_size": 16}


def test_a_datamodule_that_does_not_import_exits_2_before_any_training(tmp_path, userdm,
                                                                       capsys):
    run = tmp_path / "run"
    assert main(["pipeline", "--run-dir", str(run), "--quick",
                 "--datamodule", f"{userdm}:Nope"]) == 2
    err = capsys.readouterr().err
    assert "train.datamodule" in err and f"'{userdm}:Nope'" in err
    assert "expected a LightningDataModule class" in err
    assert not (run / "float").exists()
    assert main(["pipeline", "--run-dir", str(run), "--quick",
                 "--datamodule", f"{userdm}:not_a_datamodule"]) == 2
    assert "without train_dataloader, val_dataloader, test_dataloader" in capsys.readouterr().err


def test_what_the_pipeline_needs_from_a_datamodule_is_named_when_missing(userdm):
    with pytest.raises(ConfigError, match=r"train.datamodule.*cannot be built with "
                                          r"datamodule_args \{'bad': 1\}"):
        check_train(TrainConfig(datamodule=f"{userdm}:ToyData", datamodule_args={"bad": 1}),
                    "train")
    with pytest.raises(ConfigError, match="datamodule_args"):
        TrainConfig(datamodule_args={"batch_size": 1})
    dm = build_user_datamodule(f"{userdm}:NoClasses")
    assert isinstance(dm, UserDataModule)
    dm.setup()
    assert dm.input_shape == (1, 8, 8) and dm.input_size == 8
    with pytest.raises(ValueError, match="integer attribute 'num_classes'.*set self.num_classes"):
        _ = dm.num_classes
    with pytest.raises(ValueError, match="has mean but not std"):
        _ = dm.mean
    train = dm.split("train")
    assert len(train) == 160 and torch.equal(dm.normalize(train.tensors[0]), train.tensors[0])
