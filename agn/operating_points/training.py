"""Joint retraining of all operating points with shared weights (Lightning, resumable).

Every training step runs the batch through every point (its multipliers simulated bit-exactly,
its affines active) and minimises the mean of the points' cross-entropies: one backward pass of
the mean gives the average of the points' gradients, which is QoS-Nets' "accumulate and average"
without keeping P gradient copies. Shared weights get the averaged gradient; each point's
affines only their own point's (scaled by 1/P, as in the average).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from agn.config import TrainConfig
from agn.data.base import ImageDataModule
from agn.layers import Mode, input_pmfs, set_mode, set_observe
from agn.operating_points.affine import attach_points, compensate_points, select_point
from agn.run import CHECKPOINT_FILE, build_stage_model, load_stage_model, read_checkpoint
from agn.seeding import seeded
from agn.training.module import AGNModule, Stage
from agn.training.resume import GlobalRngState, lightning_interrupts
from agn.training.stages import AtomicCheckpointIO, accelerator, process_settings

#: Seed offset of the joint retraining (after float 0, qat 1, noise 2, retrain 3).
SEED_OFFSET = 4


class PointsModule(AGNModule):
    """Retrain one model for several operating points at once (see the module docstring).

    Args:
        model: a model with :func:`~agn.operating_points.affine.attach_points` applied, in
            approximate mode.
        assignments: per point, layer name -> multiplier spec.
        optim: the optimisation settings (the retrain stage's).
    """

    def __init__(self, model: nn.Module, assignments: Sequence[Mapping[str, str]],
                 optim) -> None:
        super().__init__(model, Stage.RETRAIN, optim)
        self.assignments = [dict(a) for a in assignments]

    def use(self, point: int) -> None:
        """Make ``point`` the model's active point."""
        select_point(self.model, point, self.assignments[point])

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        losses = []
        for p in range(len(self.assignments)):
            self.use(p)
            losses.append(F.cross_entropy(self.model(x), y))
        self.use(0)
        loss = torch.stack(losses).mean()
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def _eval_step(self, batch, split: str) -> None:
        x, y = batch
        for p in range(len(self.assignments)):
            self.use(p)
            logits = self.model(x)
            self.log(f"{split}/acc_p{p}", (logits.argmax(1) == y).float().mean())
        self.use(0)


@dataclass(frozen=True)
class JointResult:
    """The jointly retrained model (point 0 active) and how many epochs it trained."""

    model: nn.Module
    epochs: int


def _ready(model: nn.Module, assignments: Sequence[Mapping[str, str]]) -> nn.Module:
    select_point(model, 0, assignments[0])
    set_mode(model, Mode.APPROX)
    set_observe(model, False)
    return model


def retrain_points(out_dir: Path, run_dir: Path, cfg: TrainConfig, dm: ImageDataModule,
                   assignments: Sequence[Mapping[str, str]], epochs: int, batches: int = 0,
                   start: str = "noise", compensate: bool = False) -> JointResult:
    """Retrain all points jointly from stage ``start``'s model for ``epochs`` epochs (at most
    ``batches`` batches each, 0 = all), checkpointing ``out_dir/last.ckpt`` every epoch; a
    killed run resumes from it, a finished one only loads it. With ``epochs`` 0 the points keep
    the starting model's weights and identity affines. With ``compensate`` every point gets the
    error-mean bias corrections of its multipliers, measured (``cfg.calib_batches`` training
    batches) on the starting model in its exact quantized mode, as the retrain stage does."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / CHECKPOINT_FILE
    done = False
    n = len(assignments)
    if ckpt.exists():
        model = attach_points(build_stage_model("retrain", cfg, dm), n, compensate)
        state = read_checkpoint(ckpt)
        model.load_state_dict({k.removeprefix("model."): v
                               for k, v in state["state_dict"].items()})
        done = int(state["epoch"]) + 1 >= epochs
    else:
        model = attach_points(load_stage_model(start, run_dir, cfg, dm), n, compensate)
        if compensate:
            with seeded(cfg.seed + SEED_OFFSET):
                pmfs = input_pmfs(model, (x for x, _ in dm.train_dataloader()),
                                  cfg.calib_batches)
            compensate_points(model, assignments, pmfs)
    _ready(model, assignments)
    if epochs == 0 or done:
        return JointResult(model.eval(), epochs)
    module = PointsModule(model, assignments, cfg.stage("retrain"))
    with (process_settings(cfg.threads), seeded(cfg.seed + SEED_OFFSET), lightning_interrupts()):
        trainer = pl.Trainer(
            max_epochs=epochs, accelerator=accelerator(cfg, Stage.RETRAIN), devices=1,
            deterministic=True, default_root_dir=str(out_dir), logger=False,
            enable_progress_bar=cfg.progress_bar, enable_model_summary=False,
            num_sanity_val_steps=0, limit_train_batches=batches or 1.0, limit_val_batches=0,
            plugins=[AtomicCheckpointIO()],
            callbacks=[pl.callbacks.ModelCheckpoint(dirpath=out_dir, filename="last",
                                                    save_top_k=1, enable_version_counter=False),
                       GlobalRngState()])
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt) if ckpt.exists() else None)
    select_point(model, 0, assignments[0])
    return JointResult(model.eval(), epochs)
