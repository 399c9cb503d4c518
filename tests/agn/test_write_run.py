"""agn.write_run: a user's model and LightningDataModule -> a run directory the CLI works on."""
from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import agn
import deploy
import hwlib
from agn.callbacks import NoiseTraining, QuantizationAwareTraining
from agn.cli import main
from agn.intsim import predict
from agn.userrun import RunWriteError


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 2 * 2, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.view(x.size(0), -1))


class Lit(pl.LightningModule):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


class Data(pl.LightningDataModule):
    """A user's data module: not the toolkit's ImageDataModule."""

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        templates = torch.randn(3, 1, 8, 8, generator=g)
        def split(n):
            y = torch.randint(0, 3, (n,), generator=g)
            return TensorDataset(templates[y] + 0.5 * torch.randn(n, 1, 8, 8, generator=g), y)
        self.train, self.val, self.test = split(128), split(40), split(40)

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=32, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=32)

    def test_dataloader(self):
        return DataLoader(self.test, batch_size=32)


def _fit(lit, dm, callbacks, epochs, root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False,
                   enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=root,
                   callbacks=callbacks).fit(lit, datamodule=dm)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")
def test_user_run_goes_through_match_and_deploy(tmp_path, capsys):
    torch.manual_seed(0)
    dm = Data()
    dm.setup()
    model = agn.prepare(Net(), next(iter(dm.train_dataloader()))[0])
    lit = Lit(model)
    _fit(lit, dm, [QuantizationAwareTraining(calib_batches=2)], 2, str(tmp_path))
    _fit(lit, dm, [NoiseTraining(lam=0.3)], 1, str(tmp_path))
    run = agn.write_run(model, tmp_path / "run", dm, samples=64, n_fields=16)
    names = ["conv1", "conv2", "fc"]
    net = deploy.load(run)
    assert [layer.name for layer in net.layers] == names
    assert [r["name"] for r in json.loads((run / "sigmas.json").read_text())["layers"]] == names
    val = np.load(run / "integer_val.npz")
    assert val["x"].dtype == np.uint8 and val["x"].shape == (40, 1, 8, 8)
    with torch.no_grad():
        fq = model.eval()(dm.val.tensors[0]).argmax(1).numpy()
    assert np.mean(predict(net, val["x"]) == fq) >= 0.95

    assert main(["match", "--run-dir", str(run)]) == 0
    assert (run / "assignment.json").exists()
    np.save(tmp_path / "x.npy", val["x"][:4])  # real encoded images, not random codes
    assert main(["deploy", str(run), "--assignment", str(run / "assignment.json"),
                 "--inputs", str(tmp_path / "x.npy"), "--no-target-check"]) == 0
    assert json.loads((run / "validation.json").read_text())["ok"] is True

    # agn search on the write_run directory: no pipeline.json, scored on integer_val.npz
    capsys.readouterr()
    assert main(["search", "--run-dir", str(run), "--pop", "6", "--gen", "1",
                 "--no-baseline"]) == 0
    summary = json.loads(capsys.readouterr().out)
    chosen = hwlib.read_assignment(run / "chosen_assignment.json")
    assert [x.name for x in chosen.layers] == names and chosen.catalog == "marlin:*"
    exact = float(np.mean(predict(net, val["x"]) == val["y"]))
    assert summary["exact_accuracy"] == pytest.approx(exact)
    assert (run / "pareto.csv").exists() and (run / "search").is_dir()
    # ... and agn deploy of the chosen point on the encoded test images (the default inputs)
    assert main(["deploy", str(run), "--assignment", str(run / "chosen_assignment.json"),
                 "--n-inputs", "3", "--no-target-check"]) == 0
    test_x = np.load(run / "integer_test.npz")["x"][:3]
    np.testing.assert_array_equal(np.load(run / "validation_inputs.npy"), test_x)
    assert json.loads((run / "validation.json").read_text())["ok"] is True
    with pytest.raises(ValueError, match="retraining candidates needs the model"):
        from agn.cli import build_parser
        from agn.cli.search import context

        context(build_parser("search").parse_args(["search", "--run-dir", str(run),
                                                    "--retrain-epochs", "1"]))


def test_write_run_refuses_an_unprepared_model(tmp_path):
    with pytest.raises(RunWriteError, match="expected a prepared model"):
        agn.write_run(Net(), tmp_path, Data())
