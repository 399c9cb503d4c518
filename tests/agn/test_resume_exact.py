"""A training stage stopped after some epochs and resumed gives the same checkpoint, result and
metrics log as an uninterrupted one (issue 16 item 5): every generator a stage draws from (the
sampler's, the augmentation's, the global ones behind noise and dropout) is in ``last.ckpt``."""
import csv
import json

import pytest
import pytorch_lightning as pl
import torch

from agn.training import NoiseConfig, StageConfig, TrainConfig, run_stage

CFG = TrainConfig(
    model="lenet5", data="digits", data_args={"batch_size": 64, "shift": 2, "limit_train": 512},
    seed=3, progress_bar=False, threads=1, float_stage=StageConfig(epochs=4, lr=0.05),
    qat=StageConfig(epochs=1, lr=0.005), noise_stage=StageConfig(epochs=4, lr=0.005),
    noise=NoiseConfig(lam=0.2, sigma_init=0.1, sigma_max=1.0, sigma_lr=0.05),
    limit_val_batches=2)


class Stop(Exception):
    """Raised by :class:`StopAt` to end a fit as a kill would."""


class StopAt(pl.Callback):
    """Stop the fit when epoch ``epoch`` starts (epochs before it are checkpointed)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise Stop


def weights(run, stage):
    return torch.load(run / stage / "last.ckpt", map_location="cpu",
                      weights_only=False)["state_dict"]


def rows(run, stage):
    with open(run / "logs" / stage / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def same(a, b) -> bool:
    """Tensors equal exactly, nested containers and plain values equal."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def assert_same_stage(a, b, stage):
    wa, wb = weights(a, stage), weights(b, stage)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert same(wa[k], wb[k]), (stage, k)
    ra, rb = (json.loads((r / stage / "result.json").read_text()) for r in (a, b))
    for r in (ra, rb):
        r.pop("checkpoint"), r.pop("sigmas")
    assert ra == rb
    assert rows(a, stage) == rows(b, stage)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    run = tmp_path_factory.mktemp("straight")
    for s in ("float", "qat", "noise"):
        run_stage(s, run, CFG)
    return run


@pytest.mark.parametrize("stop", [1, 3])
def test_float_stage_stopped_and_resumed_equals_uninterrupted(straight, tmp_path, stop):
    run = tmp_path / "run"
    with pytest.raises(Stop):
        run_stage("float", run, CFG, callbacks=[StopAt(stop)])
    assert not (run / "float" / "result.json").exists()
    assert len({r["epoch"] for r in rows(run, "float")}) == stop
    run_stage("float", run, CFG)
    assert_same_stage(straight, run, "float")


def test_noise_stage_stopped_and_resumed_equals_uninterrupted(straight, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(straight, run)
    shutil.rmtree(run / "noise")
    shutil.rmtree(run / "logs" / "noise")
    (run / "sigmas.json").unlink()
    with pytest.raises(Stop):
        run_stage("noise", run, CFG, callbacks=[StopAt(2)])
    run_stage("noise", run, CFG)
    assert_same_stage(straight, run, "noise")
    assert (run / "sigmas.json").read_bytes() == (straight / "sigmas.json").read_bytes()
