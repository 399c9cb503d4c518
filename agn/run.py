"""The run directory: every path in it, the recorded configuration, the data module of a run,
the model a stage left behind, and the export and operand statistics of a run.

Layout of a run directory ``RUN``::

    RUN/config.yaml              the training configuration of the first stage run here
    RUN/<stage>/config.yaml      the configuration the stage ran with (a versioned document)
    RUN/<stage>/last.ckpt        Lightning checkpoint (updated every epoch; resumed when killed)
    RUN/<stage>/result.json      written when the stage finished
    RUN/sigmas.json              after the noise stage
    RUN/operand_stats.npz        operand statistics of the noise-trained model
    RUN/assignment.json          the error model's assignment
    RUN/search/                  the search's network, seeds, checkpoint and evaluations
    RUN/pareto.csv, .json, .png  the front; RUN/chosen_assignment.json the chosen point
    RUN/network.json, .npz       the integer network; RUN/firmware/, RUN/validation.json
    RUN/pipeline.json            the pipeline's configuration and finished stages

Layers below this one (layers, stats, export, search) take models and data as arguments and
never open a run directory themselves.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

import deploy
import errormodels as em
from agn.config import (
    TRAIN_STAGES,
    ConfigError,
    PipelineConfig,
    TrainConfig,
    load_config,
    load_pipeline_config,
)
from agn.data import build_datamodule
from agn.data.generic import DataModule, build_user_datamodule
from agn.export import ExportError, export
from agn.layers import approx_layers, fold_bn, set_calibration
from agn.models import build_model
from agn.stats import sample_batches, write_operand_stats
from agn.status_file import read_status

__all__ = [
    "ASSIGNMENT_FILE", "BASELINE_DIR", "BEST_FILE", "CHECKPOINT_FILE", "CHOSEN_FILE",
    "CONFIG_FILE", "QUANTIZED_STAGES", "RESULT_FILE", "SEARCH_DIR", "SEEDS_FILE", "SIGMAS_FILE",
    "STATS_FILE", "STATUS_FILE", "RunInterrupted", "StageError", "build_stage_model",
    "checkpoint_path", "datamodule", "export_run", "finished", "load_stage_model", "model_path",
    "pipeline_config", "quantizable", "read_checkpoint", "read_status", "result_path",
    "stage_config", "stage_config_path", "stage_dir", "stage_name", "write_run_stats",
]

STATUS_FILE = "pipeline.json"
CONFIG_FILE = "config.yaml"
RESULT_FILE = "result.json"
CHECKPOINT_FILE = "last.ckpt"
BEST_FILE = "best.ckpt"  # the float stage's best-validation weights, which QAT starts from
SEARCH_DIR, BASELINE_DIR = "search", "search_random"
SEEDS_FILE = f"{SEARCH_DIR}/seeds.json"
CHOSEN_FILE = "chosen_assignment.json"
SIGMAS_FILE, STATS_FILE, ASSIGNMENT_FILE = em.SIGMAS_FILE, em.STATS_FILE, em.ASSIGNMENT_FILE
QUANTIZED_STAGES = ("retrain", "noise", "qat")  # latest first; a float model has no integer form

PathLike = str | os.PathLike[str]


class StageError(ValueError):
    """A stage that cannot start or be loaded (missing previous checkpoint, conflicting run
    directory)."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (KeyboardInterrupt) during stage ``stage`` of the run in ``run_dir``; rerunning
    the same command resumes it."""

    def __init__(self, run_dir: PathLike, stage: str) -> None:
        super().__init__(f"stopped in stage {stage!r} of {run_dir}")
        self.run_dir, self.stage = Path(run_dir), stage


def stage_name(stage: Any) -> str:
    """``float``, ``qat``, ``noise`` or ``retrain`` from a name or an ``agn.training.Stage``."""
    name = getattr(stage, "value", stage)
    if name not in TRAIN_STAGES:
        raise ValueError(f"training stage {stage!r}: expected one of {list(TRAIN_STAGES)}")
    return str(name)


def stage_dir(run_dir: PathLike, stage: Any) -> Path:
    """``RUN/<stage>``."""
    return Path(run_dir) / stage_name(stage)


def checkpoint_path(run_dir: PathLike, stage: Any) -> Path:
    """``RUN/<stage>/last.ckpt``."""
    return stage_dir(run_dir, stage) / CHECKPOINT_FILE


def model_path(run_dir: PathLike, stage: Any) -> Path:
    """The checkpoint holding the model a finished stage hands on: ``RUN/<stage>/best.ckpt``
    when the stage kept its best validation epoch (the float stage), else ``last.ckpt``."""
    best = stage_dir(run_dir, stage) / BEST_FILE
    return best if best.exists() else checkpoint_path(run_dir, stage)


def result_path(run_dir: PathLike, stage: Any) -> Path:
    """``RUN/<stage>/result.json`` (present once the stage finished)."""
    return stage_dir(run_dir, stage) / RESULT_FILE


def stage_config_path(run_dir: PathLike, stage: Any) -> Path:
    """``RUN/<stage>/config.yaml``."""
    return stage_dir(run_dir, stage) / CONFIG_FILE


def finished(run_dir: PathLike, stage: Any) -> bool:
    """Whether training stage ``stage`` finished in ``run_dir`` (result and checkpoint there)."""
    return result_path(run_dir, stage).exists() and checkpoint_path(run_dir, stage).exists()


def stage_config(run_dir: PathLike, stage: Any) -> TrainConfig:
    """The training configuration ``stage`` recorded in ``run_dir`` (older versions migrated)."""
    path = stage_config_path(run_dir, stage)
    if not path.exists():
        raise StageError(f"stage {stage_name(stage)!r} has not run in {run_dir}: {path} is "
                         f"missing")
    return load_config(path)


def pipeline_config(run_dir: PathLike) -> PipelineConfig:
    """The pipeline configuration ``run_dir/pipeline.json`` records (older versions migrated)."""
    path = Path(run_dir) / STATUS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run 'agn pipeline --run-dir {run_dir}' first")
    return load_pipeline_config([read_status(path).get("config", {})])


def read_checkpoint(path: PathLike) -> dict[str, Any]:
    """The contents of a stage's ``last.ckpt``.

    Raises:
        StageError: the file cannot be read as a checkpoint (truncated, or not one), naming it
            and how to recover.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch/pickle raise many types for a bad file
        raise StageError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc}); it "
                         f"is truncated or corrupt: delete it (and the stage's result.json) to "
                         f"train that stage again") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise StageError(f"{path}: not a Lightning checkpoint (no 'state_dict'); delete it to "
                         f"train that stage again")
    return ckpt


def datamodule(cfg: TrainConfig, setup: bool = False) -> DataModule:
    """The data module of a training configuration (the user's ``datamodule``, else the dataset
    ``data``); with ``setup`` its data prepared and split."""
    dm: DataModule
    if cfg.datamodule is not None:
        try:
            dm = build_user_datamodule(cfg.datamodule, cfg.datamodule_args)
        except ValueError as exc:
            raise ConfigError("datamodule", str(exc)) from None
    else:
        try:
            dm = build_datamodule(cfg.data, seed=cfg.seed, **cfg.data_args)
        except TypeError as exc:
            raise ConfigError("data_args", f"{cfg.data_args} do not fit dataset {cfg.data!r}: "
                              f"{exc}") from None
    if setup:
        dm.prepare_data()
        dm.setup()
    return dm


def quantizable(model: nn.Module, dm: DataModule) -> nn.Module:
    """``model`` as the stages after float train it: an ``agn`` model with its BatchNorm folded
    (in place), or a plain PyTorch model through :func:`agn.prepare` (a copy)."""
    if approx_layers(model):
        fold_bn(model)
        return model
    from agn.preparation import prepare  # the fx pass only for plain models

    return prepare(model, torch.zeros(2, *dm.input_shape))


def build_stage_model(stage: Any, cfg: TrainConfig, dm: DataModule) -> nn.Module:
    """The model architecture of ``stage``: BatchNorm folded (a plain model prepared) for every
    stage after float."""
    model = build_model(cfg.model, dm.in_channels, dm.input_size, dm.num_classes)
    if stage_name(stage) != "float":
        model = quantizable(model, dm)
        if cfg.calibration == "learned":  # the checkpoints of these stages hold the clips
            set_calibration(model, cfg.calibration, cfg.calib_percentile)
    return model


def load_stage_model(stage: Any, run_dir: PathLike, config: Any = None,
                     dm: DataModule | None = None) -> nn.Module:
    """The model a finished stage left in ``run_dir`` (mode, multipliers, sigmas and quantizer
    ranges come from its checkpoint: :func:`model_path`, the float stage's best epoch).

    Args:
        stage: the training stage.
        run_dir: the run directory.
        config: a TrainConfig, plain data or a YAML path; by default the stage's recorded one.
        dm: the data module (shapes of the model); by default the configuration's.

    Raises:
        StageError: the stage has not finished in ``run_dir``.
    """
    name = stage_name(stage)
    ckpt = checkpoint_path(run_dir, name)
    if not finished(run_dir, name):
        raise StageError(f"stage {name!r} has not finished in {run_dir}: {ckpt} is missing "
                         f"or unfinished; run stage {name!r} first")
    cfg = stage_config(run_dir, name) if config is None else load_config(config)
    model = build_stage_model(name, cfg, dm if dm is not None else datamodule(cfg))
    state = read_checkpoint(model_path(run_dir, name))["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    return model


def export_run(run_dir: PathLike, stage: str | None = None) -> Path:
    """Export the model a training run left behind to ``run_dir/network.json`` (+ ``.npz``).

    Args:
        run_dir: a run directory of ``agn train`` or ``agn pipeline``.
        stage: the stage whose model is exported; by default the last finished of retrain,
            noise and qat.

    Returns:
        The path of ``network.json``.

    Raises:
        ExportError: no quantized stage has finished in ``run_dir``.
    """
    run = Path(run_dir)
    done = [s for s in QUANTIZED_STAGES if result_path(run, s).exists()]
    stage = stage or (done[0] if done else None)
    if stage is None or stage not in done:
        raise ExportError(f"export_run: {run} holds no finished quantized stage "
                          f"{'(qat, noise or retrain)' if stage is None else repr(stage)}; "
                          f"finished: {done}")
    cfg = stage_config(run, stage)
    dm = datamodule(cfg, setup=True)
    model = load_stage_model(stage, run, cfg, dm)
    deploy.save(export(model, dm.input_shape, name=cfg.model, mean=dm.mean, std=dm.std), run)
    return run / "network.json"


def write_run_stats(run_dir: PathLike, config: Any = None, dm: DataModule | None = None,
                    *, samples: int = 512, n_fields: int = 64, seed: int | None = None) -> Path:
    """``run_dir/operand_stats.npz`` of the model the noise stage left in ``run_dir``.

    Args:
        run_dir: a run directory whose noise stage has finished.
        config: its training configuration (a TrainConfig, plain data or YAML path); by default
            the one the noise stage recorded.
        dm: the data module, set up (built from the configuration by default).
        samples: training images the statistics see (a seeded sample).
        n_fields: receptive fields kept per layer.
        seed: sampling seed (default: the run's seed).
    """
    run = Path(run_dir)
    cfg = stage_config(run, "noise") if config is None else load_config(config)
    dm = dm if dm is not None else datamodule(cfg, setup=True)
    model = load_stage_model("noise", run, cfg, dm).eval()
    seed = cfg.seed if seed is None else seed
    batches = (dm.normalize(x) for x in sample_batches(dm.split("train"), samples, seed=seed))
    return write_operand_stats(run, model, batches, n_fields=n_fields, seed=seed)

