"""Short approximate retraining of one candidate assignment: no checkpoints, logs or bars.

This is MARLIN's per-candidate protocol (one epoch of retraining before scoring); the pipeline's
``retrain`` stage does the same for the chosen point, resumably and with logs.
"""
from __future__ import annotations

import logging
import warnings

import pytorch_lightning as pl
from torch import nn

from agn.data.base import ImageDataModule
from agn.layers import set_mode, set_observe
from agn.training.config import TrainConfig
from agn.training.module import AGNModule, Stage
from agn.training.stages import SEED_OFFSET, process_settings

__all__ = ["finetune"]

_QUIET = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")


def finetune(model: nn.Module, dm: ImageDataModule, cfg: TrainConfig, epochs: int,
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
    set_mode(model, Stage.RETRAIN.mode)
    set_observe(model, False)
    module = AGNModule(model, Stage.RETRAIN, cfg.stage("retrain"), cfg.noise)
    levels = {name: logging.getLogger(name).level for name in _QUIET}
    with process_settings(cfg.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's per-fit advice (log interval, workers)
        for name in _QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            pl.seed_everything(cfg.seed + SEED_OFFSET[Stage.RETRAIN], verbose=False)
            trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1,
                                 deterministic=True, logger=False, enable_checkpointing=False,
                                 enable_progress_bar=False, enable_model_summary=False,
                                 limit_train_batches=batches or 1.0, limit_val_batches=0,
                                 num_sanity_val_steps=0)
            trainer.fit(module, train_dataloaders=dm.train_dataloader())
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
    return model.eval()
