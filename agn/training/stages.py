"""Stage logic: float -> QAT -> noise -> approximate retraining, each resumable in a run directory.

The run directory's layout and its stage models are :mod:`agn.run`'s.

Each stage starts from the model the previous stage hands on (its ``last.ckpt``; the float stage
keeps its best validation epoch in ``best.ckpt`` and hands on that one): QAT folds BatchNorm into
the convs, warms the observers up, then trains with fake quantization; noise resets sigmas to
``sigma_init`` and freezes the observers; retrain applies the assignment file and the exact
approximate engine (straight-through gradients).
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO
from torch import nn

from agn.config import TrainConfig, check_train, document, load_config
from agn.data.generic import DataModule
from agn.layers import (
    AssignmentError,
    approximate_,
    calibrate,
    compensate_,
    input_pmfs,
    reset_sigmas,
    restrict_activations_,
    round_operands_,
    set_calibration,
    set_mode,
    set_observe,
    sigma_table,
)
from agn.run import (
    ASSIGNMENT_FILE,
    BEST_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    RESULT_FILE,
    SIGMAS_FILE,
    RunInterrupted,
    StageError,
    build_stage_model,
    checkpoint_path,
    datamodule,
    finished,
    load_stage_model,
    quantizable,
    read_checkpoint,
    stage_config_path,
)
from agn.seeding import seeded
from agn.threads import torch_threads
from agn.training.module import AGNModule, Stage, exact_teacher
from agn.training.resume import GlobalRngState, ResumableCSVLogger, lightning_interrupts
from errormodels.sigmas import sigmas_document
from hwlib.fileio import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["StageResult", "accelerator", "process_settings", "run_stage", "run_stages"]

PREVIOUS = {Stage.QAT: Stage.FLOAT, Stage.NOISE: Stage.QAT, Stage.RETRAIN: Stage.NOISE}
SEED_OFFSET = {Stage.FLOAT: 0, Stage.QAT: 1, Stage.NOISE: 2, Stage.RETRAIN: 3}


@dataclass(frozen=True)
class StageResult:
    """What a finished stage reports (also ``RUN/<stage>/result.json``).

    Attributes:
        stage: stage name.
        test_acc: test accuracy in eval mode (no noise) in [0, 1].
        val_acc: validation accuracy.
        epochs: epochs trained.
        seed: the run's seed.
        checkpoint: path of the stage's ``last.ckpt``.
        sigmas: path of ``sigmas.json`` (noise stage) or None.
    """

    stage: str
    test_acc: float
    val_acc: float
    epochs: int
    seed: int
    checkpoint: str
    sigmas: str | None = None

    @classmethod
    def load(cls, path: Path) -> StageResult:
        """Read a result.json."""
        return cls(**json.loads(Path(path).read_text()))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes to a temporary file and renames it into place, so a
    killed job never leaves a truncated ``last.ckpt``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path,
                        storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def _record_config(run: Path, stage: Stage, cfg: TrainConfig) -> None:
    """RUN/config.yaml (first stage: the run's seed) and RUN/<stage>/config.yaml (this stage)."""
    path = run / CONFIG_FILE
    text = yaml.safe_dump(document(cfg), sort_keys=False)
    if path.exists():
        old = load_config(path)
        if old.seed != cfg.seed:
            raise StageError(f"run directory {run}: recorded seed {old.seed} differs from "
                             f"the configured seed {cfg.seed}; use a new run directory")
    else:
        atomic_write_text(path, text)
    atomic_write_text(stage_config_path(run, stage), text)


def _load_previous(stage: Stage, run: Path, cfg: TrainConfig, dm: DataModule) -> nn.Module:
    prev = PREVIOUS[stage]
    model = load_stage_model(prev, run, cfg, dm)
    if prev is Stage.FLOAT:
        model = quantizable(model, dm)
    return model


def _prepare(stage: Stage, model: nn.Module, run: Path, cfg: TrainConfig,
             dm: DataModule) -> None:
    """Bring a model loaded from the previous stage into this stage's starting state."""
    if stage is Stage.QAT:
        if cfg.catalog:
            restrict_activations_(model, cfg.catalog)
        batches = (x for x, _ in dm.train_dataloader())
        calibrate(model, batches, cfg.calib_batches)
    elif stage is Stage.NOISE:
        reset_sigmas(model, cfg.noise.sigma_init, cfg.noise.per_channel)
    elif stage is Stage.RETRAIN:
        path = Path(cfg.assignment) if cfg.assignment else run / ASSIGNMENT_FILE
        if not path.exists():
            raise AssignmentError(f"stage 'retrain' needs an assignment file; {path} does not "
                                  f"exist (write it with the error model or set 'assignment')")
        approximate_(model, path)
        if cfg.round_operands:
            round_operands_(model)
        if cfg.compensate:  # measured in the noise model's (exact, quantized) mode
            batches = (x for x, _ in dm.train_dataloader())
            compensate_(model, input_pmfs(model, batches, cfg.calib_batches))
    set_mode(model, stage.mode)


def run_stage(stage: Stage | str, run_dir: str | Path, config: Any,
              callbacks: Sequence[pl.Callback] = ()) -> StageResult:
    """Run one stage in ``run_dir`` (resuming a killed run; a finished stage only loads its result).

    Args:
        stage: ``float``, ``qat``, ``noise`` or ``retrain``.
        run_dir: the run directory (created if needed).
        config: a TrainConfig, plain data or a YAML path.
        callbacks: extra Lightning callbacks.

    Returns:
        The stage's result (test accuracy etc.).

    Raises:
        ConfigError: a configuration that cannot run (checked before anything is written).
        RunInterrupted: Ctrl-C during the stage (running it again resumes from ``last.ckpt``).
    """
    st = Stage.parse(stage)
    cfg = load_config(config)
    run = Path(run_dir)
    sdir = run / st.value
    if (sdir / RESULT_FILE).exists():
        return StageResult.load(sdir / RESULT_FILE)
    check_train(cfg)
    prev = PREVIOUS.get(st)
    if prev is not None and not (sdir / CHECKPOINT_FILE).exists() and not finished(run, prev):
        raise StageError(f"stage {st.value!r} starts from stage {prev.value!r}, which has not "
                         f"finished in {run} ({checkpoint_path(run, prev)} is missing or "
                         f"unfinished); run stage {prev.value!r} first")
    _record_config(run, st, cfg)
    try:
        with (process_settings(cfg.threads), seeded(cfg.seed + SEED_OFFSET[st]),
              lightning_interrupts()):
            return _run(st, run, cfg, callbacks)
    except RunInterrupted:
        raise
    except KeyboardInterrupt as exc:
        raise RunInterrupted(run, st.value) from exc


@contextmanager
def process_settings(threads: int) -> Iterator[None]:
    """Set torch's thread count (0 = leave it) and restore it, and the deterministic-algorithms
    flag Lightning's ``deterministic=True`` sets process-wide, on the way out."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        with torch_threads(threads):
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic)


def _run(st: Stage, run: Path, cfg: TrainConfig, callbacks: Sequence[pl.Callback]) -> StageResult:
    """Train stage ``st`` (inside the caller's seeding and thread settings)."""
    sdir = run / st.value
    dm = datamodule(cfg, setup=True)
    resume = sdir / CHECKPOINT_FILE
    resumed_epochs = 0
    if resume.exists():
        resumed_epochs = int(read_checkpoint(resume)["epoch"]) + 1
        model = build_stage_model(st, cfg, dm)
    elif st is Stage.FLOAT:
        model = build_stage_model(st, cfg, dm)
        set_mode(model, st.mode)
    else:
        model = _load_previous(st, run, cfg, dm)
        if st is Stage.QAT:  # the range estimator of calibration and QAT (a run setting)
            set_calibration(model, cfg.calibration, cfg.calib_percentile)
        _prepare(st, model, run, cfg, dm)
    if st is Stage.QAT:
        set_calibration(model, cfg.calibration, cfg.calib_percentile)
    set_observe(model, st in (Stage.FLOAT, Stage.QAT))
    teacher = None
    if st is Stage.RETRAIN and cfg.retrain_distill > 0:  # from the noise model, also on resume
        teacher = exact_teacher(load_stage_model(Stage.NOISE, run, cfg, dm))
    module = AGNModule(model, st, cfg.stage(st.value), cfg.noise, teacher, cfg.retrain_distill)
    opt = cfg.stage(st.value)
    trainer = pl.Trainer(
        max_epochs=opt.epochs, accelerator=accelerator(cfg, st), devices=1, deterministic=True,
        default_root_dir=str(run), enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False, num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()],
        limit_train_batches=cfg.limit_train_batches, limit_val_batches=cfg.limit_val_batches,
        logger=[ResumableCSVLogger(run / "logs", st.value, resumed_epochs),
                TensorBoardLogger(run / "tb", name=st.value, version="")],
        callbacks=[*_checkpoints(st, sdir), GlobalRngState(), *callbacks])
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume.exists() else None)
    if (sdir / BEST_FILE).exists():  # the float stage reports (and hands on) its best epoch
        module.load_state_dict(read_checkpoint(sdir / BEST_FILE)["state_dict"])
    val = trainer.validate(module, datamodule=dm, verbose=False)[0]["val/acc"]
    test = trainer.test(module, datamodule=dm, verbose=False)[0]["test/acc"]
    sigmas = None
    if st is Stage.NOISE:
        sigmas = str(_write_sigmas(run, model, dm, cfg))
    result = StageResult(st.value, float(test), float(val), opt.epochs, cfg.seed,
                         str(resume), sigmas)
    atomic_write_json(sdir / RESULT_FILE, asdict(result))
    return result


def _checkpoints(st: Stage, sdir: Path) -> list[ModelCheckpoint]:
    """``last.ckpt`` after every epoch (what a killed fit resumes from); the float stage also
    keeps its best validation accuracy in ``best.ckpt`` (the earliest epoch on ties), so a last
    epoch that overshoots is not what QAT starts from. Both save at the end of the training
    epoch, after its metrics are written (a kill between them loses no logged row), and the best
    one first, so the state ``last.ckpt`` records for it is the epoch's own."""
    last = ModelCheckpoint(dirpath=sdir, filename=CHECKPOINT_FILE.removesuffix(".ckpt"),
                           save_top_k=1, enable_version_counter=False)
    if st is not Stage.FLOAT:
        return [last]
    best = ModelCheckpoint(dirpath=sdir, filename=BEST_FILE.removesuffix(".ckpt"),
                           monitor="val/acc", mode="max", save_top_k=1,
                           enable_version_counter=False, save_on_train_epoch_end=True)
    return [best, last]


def accelerator(cfg: TrainConfig, stage: Stage) -> str:
    """Lightning's accelerator for ``stage``: the configured one; ``auto`` means the CPU for the
    retrain stage, whose approximate engine runs on the CPU only."""
    if stage is Stage.RETRAIN and cfg.accelerator == "auto":
        return "cpu"
    return cfg.accelerator


def _write_sigmas(run: Path, model: nn.Module, dm: DataModule, cfg: TrainConfig) -> Path:
    model.eval()
    with torch.no_grad():
        model(next(iter(dm.val_dataloader()))[0][:1])  # records every layer's multiplication count
    doc = sigmas_document(sigma_table(model), {"lambda": cfg.noise.lam,
                                               "sigma_max": cfg.noise.sigma_max,
                                               "seed": cfg.seed})
    return atomic_write_json(run / SIGMAS_FILE, doc)


def run_stages(run_dir: str | Path, config: Any, stages: Sequence[str] = ("float", "qat", "noise"),
               callbacks: Sequence[pl.Callback] = ()) -> list[StageResult]:
    """Run several stages in order (finished ones are skipped)."""
    return [run_stage(s, run_dir, config, callbacks) for s in stages]
