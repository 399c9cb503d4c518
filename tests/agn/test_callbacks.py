"""agn.callbacks on a user's own LightningModule and Trainer."""
from __future__ import annotations

import copy
import json
import warnings

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from agn.callbacks import (
    ApproximateRetraining,
    CallbackError,
    NoiseTraining,
    QuantizationAwareTraining,
)
from agn.config import NoiseConfig, StageConfig, TrainConfig
from agn.layers import (
    Mode,
    approx_layers,
    approximate_,
    calibrate,
    reset_sigmas,
    set_mode,
    set_observe,
)
from agn.models import build_model
from agn.preparation import prepare
from agn.seeding import seeded
from agn.training import AGNModule, Stage
from agn.training.finetune import finetune
from agn.training.stages import SEED_OFFSET
from hwlib import Assignment, write_assignment


class UserModule(pl.LightningModule):
    """A LightningModule as users write them: their loss, their optimizer."""

    def __init__(self, net: nn.Module, lr: float = 0.01, weight_decay: float = 1e-4) -> None:
        super().__init__()
        self.net, self.lr, self.weight_decay = net, lr, weight_decay

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9,
                               weight_decay=self.weight_decay)


class PlainNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(x.view(x.size(0), -1))


def _loader(n=64, shape=(1, 8, 8), classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)


def _trainer(tmp_path, epochs, callbacks=(), **kw):
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, deterministic=True,
                      logger=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, default_root_dir=str(tmp_path),
                      callbacks=list(callbacks), **kw)


@pytest.fixture(autouse=True)
def _quiet():
    """No warnings printed, and the deterministic-algorithms flag Lightning's
    ``deterministic=True`` sets process-wide restored afterwards."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    torch.use_deterministic_algorithms(deterministic)


def test_noise_callback_learns_the_sigmas_of_the_toolkit_noise_stage(tmp_path):
    """Same model, data and seed: the callback on a user's module and the toolkit's own noise
    stage (AGNModule) learn the same sigmas (tolerance 1e-6 relative)."""
    torch.manual_seed(0)
    base = build_model("lenet5", 1, 8, num_classes=3)
    calibrate(base, [torch.randn(32, 1, 8, 8)], 1)
    set_mode(base, "quant")
    noise = NoiseConfig(lam=0.5, sigma_init=0.1, sigma_max=1.0, sigma_lr=0.05)
    optim = StageConfig(lr=0.01, momentum=0.9, weight_decay=1e-4)

    ours = copy.deepcopy(base)
    reset_sigmas(ours, noise.sigma_init)
    set_mode(ours, "noise")
    set_observe(ours, False)
    pl.seed_everything(7, verbose=False)
    _trainer(tmp_path / "a", 2, enable_checkpointing=False).fit(
        AGNModule(ours, Stage.NOISE, optim, noise), train_dataloaders=_loader())

    theirs = copy.deepcopy(base)
    cb = NoiseTraining(lam=noise.lam, sigma_max=noise.sigma_max, sigma_init=noise.sigma_init,
                       sigma_lr=noise.sigma_lr)
    pl.seed_everything(7, verbose=False)
    user = UserModule(theirs, optim.lr, optim.weight_decay)
    trainer = _trainer(tmp_path / "b", 2, [cb], enable_checkpointing=False)
    trainer.fit(user, train_dataloaders=_loader())

    want = {n: float(m.sigma.abs()) for n, m in approx_layers(ours)}
    got = {n: float(m.sigma.abs()) for n, m in approx_layers(theirs)}
    assert want.keys() == got.keys()
    assert any(abs(v - noise.sigma_init) > 1e-3 for v in want.values())  # the sigmas moved
    for n in want:
        assert got[n] == pytest.approx(want[n], rel=1e-6), n
    doc = json.loads((tmp_path / "b" / "sigmas.json").read_text())
    assert [r["name"] for r in doc["layers"]] == list(got) and doc["lambda"] == noise.lam
    groups = trainer.optimizers[0].param_groups
    assert groups[-1]["weight_decay"] == 0.0 and groups[-1]["lr"] == noise.sigma_lr
    assert {id(p) for p in groups[-1]["params"]} == {id(m.sigma) for _, m in approx_layers(theirs)}
    assert "training_step" not in user.__dict__  # the user's module is left as it was


def test_qat_then_noise_callbacks_on_a_prepared_plain_model_and_resume(tmp_path):
    torch.manual_seed(0)
    net = prepare(PlainNet(), torch.randn(4, 1, 8, 8))
    user = UserModule(net)
    qat = QuantizationAwareTraining(calib_batches=2, observe_epochs=1)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "qat", filename="last")
    _trainer(tmp_path, 2, [qat, ckpt]).fit(user, train_dataloaders=_loader())
    assert qat.calibrated
    assert all(m.mode is Mode.QUANT for _, m in approx_layers(net))
    assert not net.quant_in.observe  # frozen after the first epoch
    state = torch.load(tmp_path / "qat" / "last.ckpt", weights_only=False)
    assert {"calibrated": True} in state["callbacks"].values()

    noise = NoiseTraining(lam=0.3, sigmas_path=tmp_path / "sigmas.json")
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "noise", filename="last")
    _trainer(tmp_path, 1, [noise, ckpt]).fit(user, train_dataloaders=_loader())
    after_one = {n: float(m.sigma.abs()) for n, m in approx_layers(net)}
    assert all(m.mode is Mode.NOISE for _, m in approx_layers(net))
    assert len(json.loads((tmp_path / "sigmas.json").read_text())["layers"]) == 2

    # resume the noise stage for a second epoch: the sigmas continue, they are not reset
    resumed = NoiseTraining(lam=0.3, sigmas_path=tmp_path / "sigmas2.json")
    fresh = UserModule(prepare(PlainNet(), torch.randn(4, 1, 8, 8)))
    _trainer(tmp_path, 2, [resumed]).fit(fresh, train_dataloaders=_loader(),
                                         ckpt_path=str(tmp_path / "noise" / "last.ckpt"))
    assert resumed.started
    first = approx_layers(fresh.net)[0][1]
    assert float(first.sigma.abs()) != pytest.approx(0.1)
    assert float(first.sigma.abs()) != pytest.approx(after_one[approx_layers(fresh.net)[0][0]])


def test_callbacks_need_a_prepared_model(tmp_path):
    user = UserModule(PlainNet())
    with pytest.raises(CallbackError, match="expected one prepared model"):
        _trainer(tmp_path, 1, [NoiseTraining()]).fit(user, train_dataloaders=_loader())
    with pytest.raises(CallbackError, match="lam >= 0"):
        NoiseTraining(lam=-1)


class _Loaders:
    """What the toolkit's retraining reads from a data module: the training loader."""

    def train_dataloader(self):
        return _loader()


def test_approximate_retraining_callback_trains_the_weights_of_the_toolkit_retraining(tmp_path):
    """Same model, assignment, data and seed: the callback on a user's module (their SGD, one
    parameter group) and the toolkit's retraining (agn.training.finetune, the retrain stage's
    AGNModule) give the same weights after 4 steps (tolerance 1e-6 absolute: only the order of
    floating-point operations may differ)."""
    torch.manual_seed(0)
    base = build_model("lenet5", 1, 8, num_classes=3)
    calibrate(base, [torch.randn(32, 1, 8, 8)], 1)
    set_mode(base, "quant")
    specs = dict(zip([n for n, _ in approx_layers(base)], ["marlin:3", "marlin:7", "marlin:1",
                                                           "marlin:0", "exact"]))
    write_assignment(tmp_path / "chosen.json", Assignment.from_mapping(specs))
    cfg = TrainConfig(seed=5, threads=1, accelerator="cpu",
                      retrain=StageConfig(lr=0.01, momentum=0.9, weight_decay=1e-4))

    ours = copy.deepcopy(base)
    approximate_(ours, tmp_path / "chosen.json")
    finetune(ours, _Loaders(), cfg, epochs=1, batches=4)

    theirs = copy.deepcopy(base)
    cb = ApproximateRetraining(tmp_path / "chosen.json")
    user = UserModule(theirs, cfg.retrain.lr, cfg.retrain.weight_decay)
    with seeded(cfg.seed + SEED_OFFSET[Stage.RETRAIN], workers=False):
        _trainer(tmp_path, 1, [cb], enable_checkpointing=False,
                 limit_train_batches=4).fit(user, train_dataloaders=_loader())
    assert all(m.mode is Mode.APPROX and m.spec == specs[n] for n, m in approx_layers(theirs))
    assert not theirs.quant_in.observe
    moved = 0
    for (name, a), b, start in zip(ours.state_dict().items(), theirs.state_dict().values(),
                                   base.state_dict().values()):
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=name)
            moved += not torch.equal(a, start)
    assert moved >= 5  # the weights did train


def test_approximate_retraining_resumes_with_its_assignment_and_refuses_another(tmp_path):
    torch.manual_seed(0)
    net = prepare(PlainNet(), torch.randn(4, 1, 8, 8))
    calibrate(net, [torch.randn(16, 1, 8, 8)], 1)
    specs = {"conv": "marlin:5", "fc": "exact"}
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, filename="last")
    _trainer(tmp_path, 1, [ApproximateRetraining(specs), ckpt]).fit(
        UserModule(net), train_dataloaders=_loader())
    state = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert {"started": True, "assignment": specs} in state["callbacks"].values()

    fresh = prepare(PlainNet(), torch.randn(4, 1, 8, 8))  # uncalibrated, exact multipliers
    resumed = ApproximateRetraining(specs)
    trainer = _trainer(tmp_path / "b", 2, [resumed])
    trainer.fit(UserModule(fresh), train_dataloaders=_loader(),
                ckpt_path=str(tmp_path / "last.ckpt"))
    assert trainer.current_epoch == 2 and resumed.started
    assert {n: m.spec for n, m in approx_layers(fresh)} == specs
    assert all(m.mode is Mode.APPROX for _, m in approx_layers(fresh))
    other = ApproximateRetraining({"conv": "marlin:6", "fc": "exact"})
    with pytest.raises(CallbackError, match="resume with the same assignment"):
        _trainer(tmp_path / "c", 2, [other]).fit(
            UserModule(prepare(PlainNet(), torch.randn(4, 1, 8, 8))),
            train_dataloaders=_loader(), ckpt_path=str(tmp_path / "last.ckpt"))
