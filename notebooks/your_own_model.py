# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your own model, your own Lightning run
#
# A CNN, a LightningModule and a LightningDataModule written the usual way (no toolkit classes),
# taken to validated firmware: train it in float, `agn.prepare` it, add the QAT and noise stages
# to your own `Trainer` as callbacks, write a run directory with `agn.write_run`, match each
# layer to a MARLIN level with the error model (`agn match`), search the energy/accuracy front
# (`agn search`), retrain the chosen point with a third callback, and emit and validate its
# firmware (`agn deploy`).
#
# Set `AGN_RUN_DIR` to choose the run directory and `AGN_QUICK=0` for a longer run.

# %% tags=["parameters"]
import os
from pathlib import Path

RUN_DIR = Path(os.environ.get("AGN_RUN_DIR", "runs/your_own_model"))
QUICK = os.environ.get("AGN_QUICK", "1") == "1"
EPOCHS = (3, 2, 2) if QUICK else (20, 5, 5)  # float, QAT, noise

# %% [markdown]
# ## 1. A plain model, LightningModule and data module

# %%
import warnings

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

warnings.filterwarnings("ignore", ".*does not have many workers.*")


class Net(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.dropout = nn.Dropout(0.25)
        self.fc1 = nn.Linear(16 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = self.dropout(x.view(x.size(0), -1))
        return self.fc2(F.relu(self.fc1(x)))


class Classifier(pl.LightningModule):
    def __init__(self, net: nn.Module, lr: float = 0.05) -> None:
        super().__init__()
        self.net, self.lr = net, lr

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self.net(x).argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9, weight_decay=1e-4)


class Digits(pl.LightningDataModule):
    def setup(self, stage=None):
        d = load_digits()
        x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
        x = (x - 0.3) / 0.4
        y = torch.tensor(d.target)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        x, y = x[perm], y[perm]
        self.train_set = TensorDataset(x[:1200], y[:1200])
        self.val_set = TensorDataset(x[1200:1500], y[1200:1500])
        self.test_set = TensorDataset(x[1500:], y[1500:])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=64, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=256)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=256)


def trainer(epochs, callbacks=(), **options):
    return pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=str(RUN_DIR), callbacks=list(callbacks), **options)


pl.seed_everything(0, verbose=False)
dm = Digits()
dm.setup()
net = Net()
trainer(EPOCHS[0]).fit(Classifier(net), datamodule=dm)

# %% [markdown]
# ## 2. Prepare, then QAT and noise training as callbacks on your own Trainer
#
# `agn.prepare` traces the model and returns a copy with approximable layers under the same
# names, BatchNorm folded and explicit quantization points; the callbacks add the stages.

# %%
import agn
from agn.callbacks import NoiseTraining, QuantizationAwareTraining

model = agn.prepare(net, next(iter(dm.train_dataloader()))[0])
lit = Classifier(model, lr=0.005)
trainer(EPOCHS[1], [QuantizationAwareTraining(calib_batches=5)]).fit(lit, datamodule=dm)
trainer(EPOCHS[2], [NoiseTraining(lam=0.2, sigma_max=1.0)]).fit(lit, datamodule=dm)
for name, layer in agn.layers.approx_layers(model):
    print(f"{name:6s} sigma {float(layer.sigma.detach().abs()):.3f}")

# %% [markdown]
# ## 3. The run directory, the error model and the search
#
# `agn.write_run` writes what the command line needs; `agn search` scores candidates bit-exactly
# on the encoded validation split it holds.

# %%
import json

import hwlib
from agn.cli import main

run = agn.write_run(model, RUN_DIR, dm, samples=256, n_fields=32)
assert main(["match", "--run-dir", str(run)]) == 0
assert main(["search", "--run-dir", str(run), "--pop", "8" if QUICK else "40",
             "--gen", "2" if QUICK else "20", "--no-baseline", "--max-loss", "0.02"]) == 0
chosen = hwlib.read_assignment(run / "chosen_assignment.json")
print(f"chosen point: energy {chosen.energy:.3f}, accuracy {chosen.details['accuracy']:.3f} "
      f"(exact {chosen.details['exact_accuracy']:.3f})")

# %% [markdown]
# ## 4. Approximate retraining of the chosen point, then its firmware validated bit for bit
#
# `ApproximateRetraining` puts the chosen multipliers on the layers and trains through the exact
# approximate engine (CPU only); `agn deploy` validates the retrained network on its encoded
# test images.

# %%
from agn.callbacks import ApproximateRetraining

retrain = ApproximateRetraining(run / "chosen_assignment.json")
trainer(1, [retrain], accelerator="cpu",
        limit_train_batches=4 if QUICK else 1.0).fit(lit, datamodule=dm)
final = agn.write_run(model, run / "retrained", dm, samples=64, n_fields=16, splits=("test",))
assert main(["deploy", str(final), "--run-dir", str(run), "--n-inputs", "8",
             "--no-target-check"]) == 0
report = json.loads((run / "validation.json").read_text())
print(f"firmware: {report['mismatches']} mismatches over {report['inputs']['count']} inputs")
