"""Lightning callbacks that add the toolkit's training stages to a user's own ``Trainer``.

The user's LightningModule is not changed: the callbacks find the prepared model inside it (the
one submodule with a ``quant_in`` input quantizer, as :func:`agn.prepare` and the toolkit's
models have) and act on it around the user's own training step and optimizer.

- :class:`QuantizationAwareTraining`: observer warm-up on training batches, fake quantization on,
  the observers track ranges for ``observe_epochs`` epochs, then they are frozen.
- :class:`NoiseTraining`: learned-noise mode, sigmas reset to ``sigma_init``, observers frozen,
  the noise reward subtracted from the training loss (``CE - lam * sum_l (c_l/C)
  min(|s_l|, s_max)``, as the toolkit's noise stage), sigmas in their own optimizer group without
  weight decay, logged per layer every epoch and written to ``sigmas.json`` at the end.
- :class:`ApproximateRetraining`: the assignment's multipliers on every layer, approximate mode
  (the exact approximate engine, straight-through gradients) with the observers frozen, as the
  toolkit's retrain stage; the CPU only.

Each callback's progress is in the checkpoint, so a resumed fit continues its stage instead of
starting it again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from agn.layers import (
    approx_layers,
    approximate_,
    calibrate,
    noise_penalty,
    reset_sigmas,
    set_mode,
    set_observe,
    sigma_groups,
    sigma_logs,
    sigma_table,
)
from agn.quant import ActQuant
from errormodels.sigmas import sigmas_document
from hwlib.assignment import AssignmentLike, as_assignment
from hwlib.fileio import atomic_write_json

__all__ = ["ApproximateRetraining", "CallbackError", "NoiseTraining", "QuantizationAwareTraining",
           "find_model"]


class CallbackError(ValueError):
    """A LightningModule or Trainer setup the callbacks cannot work with."""


def find_model(pl_module: nn.Module) -> nn.Module:
    """The prepared model inside ``pl_module``: its one submodule with a ``quant_in`` ActQuant."""
    found = [m for _, m in pl_module.named_modules()
             if isinstance(getattr(m, "quant_in", None), ActQuant)]
    if len(found) != 1:
        raise CallbackError(f"expected one prepared model (agn.prepare) inside "
                            f"{type(pl_module).__name__}, found {len(found)} modules with a "
                            f"'quant_in' input quantizer")
    return found[0]


def _inputs(batch: Any) -> torch.Tensor:
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise CallbackError(f"expected training batches (x, y), got {type(batch).__name__}")


class QuantizationAwareTraining(pl.Callback):
    """Quantization-aware training of the prepared model inside the user's LightningModule.

    At the start of the first fit: ``calib_batches`` training batches warm the observers up
    (layers in float mode), then every layer and quantizer switches to fake quantization. The
    observers keep tracking their ranges for ``observe_epochs`` epochs (None: the whole fit, as
    the toolkit's QAT stage) and are frozen afterwards and at the end of the fit.

    Args:
        calib_batches: observer warm-up batches (>= 1).
        observe_epochs: epochs during which the observers track ranges; None for all.
    """

    def __init__(self, calib_batches: int = 10, observe_epochs: int | None = None) -> None:
        if calib_batches < 1 or (observe_epochs is not None and observe_epochs < 0):
            raise CallbackError(f"QuantizationAwareTraining: expected calib_batches >= 1 and "
                                f"observe_epochs >= 0 or None, got {calib_batches}, "
                                f"{observe_epochs}")
        self.calib_batches, self.observe_epochs = calib_batches, observe_epochs
        self.calibrated = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = find_model(pl_module)
        if not self.calibrated:
            device = pl_module.device
            batches = (_inputs(b).to(device) for b in trainer.train_dataloader)
            calibrate(model, batches, self.calib_batches)
            self.calibrated = True
        set_mode(model, "quant")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        observe = self.observe_epochs is None or trainer.current_epoch < self.observe_epochs
        set_observe(find_model(pl_module), observe)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        set_observe(find_model(pl_module), False)

    def state_dict(self) -> dict[str, Any]:
        return {"calibrated": self.calibrated}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.calibrated = bool(state_dict["calibrated"])


class NoiseTraining(pl.Callback):
    """Learned-noise training of the prepared (calibrated) model inside the user's module.

    The user's ``training_step`` returns the task loss (a tensor or a dict with ``"loss"``);
    this callback subtracts ``lam * noise_penalty(model, sigma_max)`` from it, which is the
    toolkit's noise-stage objective. Automatic optimization only.

    Args:
        lam: weight of the noise reward (>= 0).
        sigma_max: cap of each sigma inside the reward (> 0).
        sigma_init: every layer's sigma at the start of the stage (>= 0).
        sigma_lr: learning rate of the sigma group (None: the lr of the group they came from).
        sigmas_path: where ``sigmas.json`` is written at the end of the fit (default:
            ``<trainer.default_root_dir>/sigmas.json``).
        per_channel: learn one sigma per output channel instead of one per layer.
    """

    def __init__(self, lam: float = 0.2, sigma_max: float = 1.0, sigma_init: float = 0.1,
                 sigma_lr: float | None = 0.05, sigmas_path: str | Path | None = None,
                 per_channel: bool = False) -> None:
        if lam < 0 or sigma_max <= 0 or sigma_init < 0 or (sigma_lr is not None
                                                            and sigma_lr <= 0):
            raise CallbackError(f"NoiseTraining: expected lam >= 0, sigma_max > 0, sigma_init "
                                f">= 0 and sigma_lr > 0 or None; got lam={lam}, sigma_max="
                                f"{sigma_max}, sigma_init={sigma_init}, sigma_lr={sigma_lr}")
        self.lam, self.sigma_max, self.sigma_init = lam, sigma_max, sigma_init
        self.sigma_lr, self.per_channel = sigma_lr, per_channel
        self.sigmas_path = None if sigmas_path is None else Path(sigmas_path)
        self.started = False

    # ---- setup ---------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not pl_module.automatic_optimization:
            raise CallbackError("NoiseTraining: needs automatic optimization (the reward is "
                                "added to the loss training_step returns)")
        model = find_model(pl_module)
        if not self.started:
            reset_sigmas(model, self.sigma_init, self.per_channel)
            self.started = True
        set_mode(model, "noise")
        set_observe(model, False)
        self._sigma_group(trainer, model)
        self._wrap(pl_module, model)

    def _sigma_group(self, trainer: pl.Trainer, model: nn.Module) -> None:
        """Move the sigmas into groups of their own in the first optimizer holding them: no
        weight decay, lr ``sigma_lr`` (per-channel sigmas: :func:`agn.layers.sigma_groups`; the
        optimizer state loaded on resume has the same groups)."""
        sigmas = [layer.sigma for _, layer in approx_layers(model)]
        ids = {id(p) for p in sigmas}
        if not trainer.optimizers:
            raise CallbackError("NoiseTraining: the LightningModule configured no optimizer")
        opt = next((o for o in trainer.optimizers
                    if any(id(p) in ids for g in o.param_groups for p in g["params"])),
                   trainer.optimizers[0])
        lr = None
        for g in opt.param_groups:
            if any(id(p) in ids for p in g["params"]):
                lr = g["lr"] if lr is None else lr
                g["params"] = [p for p in g["params"] if id(p) not in ids]
        lr = self.sigma_lr or (lr if lr is not None else opt.param_groups[0]["lr"])
        groups = sigma_groups(sigmas, lr)
        for group in groups:
            opt.add_param_group(group)
        for cfg in trainer.lr_scheduler_configs:
            if cfg.scheduler.optimizer is opt and hasattr(cfg.scheduler, "base_lrs"):
                cfg.scheduler.base_lrs.extend(g["lr"] for g in groups)

    def _wrap(self, pl_module: pl.LightningModule, model: nn.Module) -> None:
        step = type(pl_module).training_step.__get__(pl_module)

        def training_step(*args: Any, **kwargs: Any) -> Any:
            out = step(*args, **kwargs)
            reward = noise_penalty(model, self.sigma_max)
            pl_module.log("train/noise_reward", reward, on_step=False, on_epoch=True)
            if isinstance(out, dict):
                return {**out, "loss": out["loss"] - self.lam * reward}
            if not isinstance(out, torch.Tensor):
                raise CallbackError(f"NoiseTraining: training_step returned "
                                    f"{type(out).__name__}; expected the loss tensor or a dict "
                                    f"with 'loss'")
            return out - self.lam * reward

        pl_module.training_step = training_step  # type: ignore[method-assign]

    # ---- logging and the result ----------------------------------------------------------
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.log_dict(sigma_logs(find_model(pl_module)))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.__dict__.pop("training_step", None)
        if trainer.is_global_zero:
            self.write_sigmas(find_model(pl_module),
                              self.sigmas_path or Path(trainer.default_root_dir) / "sigmas.json")

    def write_sigmas(self, model: nn.Module, path: str | Path) -> Path:
        """Write ``sigmas.json`` (per layer: name, |sigma|, multiplications, fan-in, and the
        channel sigmas when learned per channel)."""
        doc = sigmas_document(sigma_table(model), {"lambda": self.lam,
                                                   "sigma_max": self.sigma_max})
        return atomic_write_json(Path(path), doc)

    def state_dict(self) -> dict[str, Any]:
        return {"started": self.started}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.started = bool(state_dict["started"])


class ApproximateRetraining(pl.Callback):
    """Approximate retraining of the prepared (quantized) model inside the user's module.

    At the start of the first fit every approximable layer gets the multiplier ``assignment``
    names (:func:`agn.layers.approximate_`, which also narrows input quantizers to the codes the
    multipliers accept); every fit runs in approximate mode with the observers frozen, which is
    the toolkit's retrain stage. The user's loss and optimizer are left as they are (the sigmas
    get no gradient in approximate mode). The layers' multipliers are in the model's checkpoint
    and the assignment in this callback's state, so a resumed fit continues the same retraining;
    resuming with another assignment is refused.

    Args:
        assignment: an :class:`hwlib.Assignment`, an assignment file (``assignment.json``,
            ``chosen_assignment.json``) or a mapping layer -> spec.

    Raises:
        CallbackError: the module is not on the CPU (the approximate engine runs there only;
            ``Trainer(accelerator="cpu")``), or a resumed fit had another assignment.
        AssignmentError: the assignment does not name exactly the model's layers.
    """

    def __init__(self, assignment: AssignmentLike) -> None:
        self.assignment = as_assignment(assignment)
        self.started = False

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type != "cpu":
            raise CallbackError(f"ApproximateRetraining: the approximate engine runs on the CPU "
                                f"only, the module is on {pl_module.device}; use "
                                f"Trainer(accelerator='cpu')")
        model = find_model(pl_module)
        if not self.started:
            approximate_(model, self.assignment)
            self.started = True
        set_mode(model, "approx")
        set_observe(model, False)

    def state_dict(self) -> dict[str, Any]:
        return {"started": self.started, "assignment": self.assignment.specs()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = dict(state_dict["assignment"])
        if saved != self.assignment.specs():
            raise CallbackError(f"ApproximateRetraining: the checkpoint retrained with "
                                f"{saved}, this callback has {self.assignment.specs()}; resume "
                                f"with the same assignment")
        self.started = bool(state_dict["started"])
