"""The one LightningModule of every stage: cross-entropy (minus the noise reward), accuracy, SGD."""
from __future__ import annotations

import copy
import enum

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from agn.config import NoiseConfig, StageConfig
from agn.layers import Mode, approx_layers, noise_penalty, set_mode, sigma_groups, sigma_logs

__all__ = ["DISTILL_TEMPERATURE", "AGNModule", "Stage", "exact_teacher"]

#: Softmax temperature of the distillation term.
DISTILL_TEMPERATURE = 2.0


def exact_teacher(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` with every approximable layer exact (fake-quant, no rounding,
    no compensation): the exact integer network whose logits a retraining distils from."""
    teacher = copy.deepcopy(model)
    for _, layer in approx_layers(teacher):
        layer.set_multiplier("exact")
    set_mode(teacher, Mode.QUANT)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


class Stage(str, enum.Enum):
    """Training stages, in pipeline order, and the layer mode each trains in."""

    FLOAT = "float"
    QAT = "qat"
    NOISE = "noise"
    RETRAIN = "retrain"

    @property
    def mode(self) -> Mode:
        """Layer mode of this stage."""
        return {Stage.FLOAT: Mode.FLOAT, Stage.QAT: Mode.QUANT, Stage.NOISE: Mode.NOISE,
                Stage.RETRAIN: Mode.APPROX}[self]

    @classmethod
    def parse(cls, value: Stage | str) -> Stage:
        """A Stage from itself or its name."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"stage: expected one of {[s.value for s in cls]}, got "
                             f"{value!r}") from None


class AGNModule(pl.LightningModule):
    """Train ``model`` for one stage.

    Loss: cross-entropy; in the noise stage ``CE - lam * sum_l (c_l/C) min(|sigma_l|, sigma_max)``.
    Every parameter (sigmas included) is in the optimizer; sigmas get no weight decay.

    Args:
        model: a model built from approximable layers, already in the stage's mode.
        stage: the stage (decides the loss).
        optim: optimisation settings.
        noise: noise-stage hyperparameters.
        teacher: a model whose logits the loss distils from (:func:`exact_teacher`); kept out of
            the state dict and the optimizer.
        distill: weight ``d`` of the distillation term: loss ``(1 - d) CE + d T^2 KL(teacher ||
            model)`` at temperature ``T`` = :data:`DISTILL_TEMPERATURE` (0: plain CE).
    """

    def __init__(self, model: nn.Module, stage: Stage | str = Stage.FLOAT,
                 optim: StageConfig = StageConfig(), noise: NoiseConfig = NoiseConfig(),
                 teacher: nn.Module | None = None, distill: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.stage = Stage.parse(stage)
        self.optim, self.noise = optim, noise
        if not 0.0 <= distill <= 1.0 or (distill > 0 and teacher is None):
            raise ValueError(f"AGNModule: distill must be in [0, 1] and needs a teacher, got "
                             f"{distill} with teacher {type(teacher).__name__}")
        # a tuple: not a registered submodule (neither in the state dict nor in the optimizer)
        self._teacher: tuple[nn.Module, ...] = (teacher,) if teacher is not None and distill else ()
        self.distill = float(distill)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        loss = ce
        if self._teacher:
            with torch.no_grad():
                target = self._teacher[0](x)
            t = DISTILL_TEMPERATURE
            kl = F.kl_div(F.log_softmax(logits / t, dim=1), F.log_softmax(target / t, dim=1),
                          reduction="batchmean", log_target=True) * t * t
            loss = (1.0 - self.distill) * ce + self.distill * kl
            self.log("train/distill_kl", kl, on_step=False, on_epoch=True)
        if self.stage is Stage.NOISE:
            reward = noise_penalty(self.model, self.noise.sigma_max)
            loss = ce - self.noise.lam * reward
            self.log("train/noise_reward", reward, on_step=False, on_epoch=True)
        self.log("train/ce", ce, on_step=False, on_epoch=True)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        if self.stage is Stage.NOISE:
            self.log_dict(sigma_logs(self.model))

    def _eval_step(self, batch, split: str) -> None:
        x, y = batch
        logits = self.model(x)
        self.log(f"{split}/loss", F.cross_entropy(logits, y))
        self.log(f"{split}/acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def configure_optimizers(self):
        sigmas = [p for n, p in self.named_parameters() if n.endswith(".sigma")]
        ids = {id(p) for p in sigmas}
        others = [p for p in self.parameters() if id(p) not in ids]
        o = self.optim
        groups = [{"params": others, "weight_decay": o.weight_decay},
                  *sigma_groups(sigmas, self.noise.sigma_lr or o.lr)]
        if o.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
        else:
            opt = torch.optim.Adam(groups, lr=o.lr)
        if not o.milestones:
            return opt
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(o.milestones), o.gamma)
        return {"optimizer": opt, "lr_scheduler": sched}
