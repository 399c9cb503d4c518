"""Short approximate retraining of one candidate assignment: no checkpoints, logs or bars.

This is MARLIN's per-candidate protocol (one epoch of retraining before scoring); the pipeline's
``retrain`` stage does the same for the chosen point, resumably and with logs.

Process state is left as it was found: the global random generators are seeded for the fit (as
``pl.seed_everything`` would, so every candidate trains bit-identically) and restored afterwards,
the thread count and deterministic-algorithms flag are restored, warning filters are changed only
inside ``warnings.catch_warnings()``, and no logger is reconfigured.
"""
from __future__ import annotations

import warnings

import pytorch_lightning as pl
from torch import nn

from agn.config import TrainConfig
from agn.data.generic import DataModule
from agn.layers import set_mode, set_observe
from agn.seeding import seeded
from agn.training.module import AGNModule, Stage, exact_teacher
from agn.training.stages import SEED_OFFSET, accelerator, process_settings

__all__ = ["finetune"]


def finetune(model: nn.Module, dm: DataModule, cfg: TrainConfig, epochs: int,
             batches: int = 0) -> nn.Module:
    """Retrain ``model`` (its multipliers already assigned) in approximate mode, in place.

    Uses the ``retrain`` stage's optimiser settings and seed, keeps the quantizer ranges frozen
    and trains ``epochs`` epochs of at most ``batches`` batches each (0 = the whole split).

    Returns:
        The model, in eval mode.
    """
    if epochs < 1 or batches < 0:
        raise ValueError(f"finetune: expected epochs >= 1 and batches >= 0, got epochs={epochs}, "
                         f"batches={batches}")
    teacher = exact_teacher(model) if cfg.retrain_distill > 0 else None
    set_mode(model, Stage.RETRAIN.mode)
    set_observe(model, False)
    module = AGNModule(model, Stage.RETRAIN, cfg.stage("retrain"), cfg.noise, teacher,
                       cfg.retrain_distill)
    with (process_settings(cfg.threads), warnings.catch_warnings(),
          seeded(cfg.seed + SEED_OFFSET[Stage.RETRAIN], workers=False)):
        warnings.simplefilter("ignore")  # Lightning's per-fit advice (log interval, workers)
        trainer = pl.Trainer(max_epochs=epochs, accelerator=accelerator(cfg, Stage.RETRAIN),
                             devices=1, deterministic=True, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False,
                             limit_train_batches=batches or 1.0, limit_val_batches=0,
                             num_sanity_val_steps=0)
        trainer.fit(module, train_dataloaders=dm.train_dataloader())
    return model.eval()
