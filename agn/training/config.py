"""Typed training configuration (the YAML schema of ``agn train``): per-stage optimisation and
the noise-training hyperparameters of docs/noise_method.md."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigError", "NoiseConfig", "StageConfig", "TrainConfig", "load_config"]


class ConfigError(ValueError):
    """A configuration value or file that cannot be used."""


@dataclass(frozen=True)
class StageConfig:
    """Optimisation of one stage.

    Attributes:
        epochs: training epochs.
        lr: learning rate.
        optimizer: ``sgd`` (with momentum) or ``adam``.
        momentum: SGD momentum.
        weight_decay: L2 weight decay (never applied to the sigmas).
        milestones: epochs at which the learning rate is multiplied by ``gamma``.
        gamma: learning-rate decay factor.
    """

    epochs: int = 10
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"stage epochs: expected >= 0, got {self.epochs}")
        if not self.lr > 0:
            raise ConfigError(f"stage lr: expected > 0, got {self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"stage optimizer: expected 'sgd' or 'adam', got {self.optimizer!r}")
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))


@dataclass(frozen=True)
class NoiseConfig:
    """Learned-noise hyperparameters (docs/noise_method.md).

    Loss: ``CE - lam * sum_l (c_l/C) min(|s_l|, s_max)``.

    Attributes:
        lam: lambda, the weight of the noise reward.
        sigma_init: initial sigma of every layer.
        sigma_max: cap of each sigma inside the reward.
        sigma_lr: learning rate of the sigmas (None: the stage's lr).
    """

    lam: float = 0.2
    sigma_init: float = 0.1
    sigma_max: float = 0.5
    sigma_lr: float | None = None

    def __post_init__(self) -> None:
        if self.lam < 0 or self.sigma_init < 0 or not self.sigma_max > 0:
            raise ConfigError(f"noise: expected lam >= 0, sigma_init >= 0, sigma_max > 0; got "
                              f"lam={self.lam}, sigma_init={self.sigma_init}, "
                              f"sigma_max={self.sigma_max}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; stages read their own block.

    Attributes:
        model: registry name (``lenet5``, ``marlin_mnist``, ``resnet8``, ...).
        data: dataset name (``digits``, ``mnist``, ``fashion-mnist``, ``cifar10``).
        data_args: keyword arguments of the data module (``root``, ``batch_size``, ``shift``...).
        seed: seed of the splits, shuffling, augmentation, initialisation and noise.
        float_stage / qat / noise_stage / retrain: per-stage optimisation.
        noise: learned-noise hyperparameters.
        calib_batches: observer warm-up batches before QAT.
        catalog: the multiplier catalog the network will run on (``marlin:*``,
            ``evo:mul8s_*``, ...): QAT quantizes every approximable layer's input to the codes all
            its multipliers accept (0..127 for signed EvoApprox circuits); None keeps 0..255.
        assignment: assignment file of the retrain stage (default ``RUN/assignment.json``).
        limit_train_batches / limit_val_batches: Lightning limits (fractions or counts).
        progress_bar: show Lightning's progress bar.
        threads: torch CPU threads (0 keeps torch's default; 1 is fastest for tiny models on a
            busy machine).
    """

    model: str = "lenet5"
    data: str = "digits"
    data_args: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    float_stage: StageConfig = StageConfig(epochs=30, lr=0.05, milestones=(20,))
    qat: StageConfig = StageConfig(epochs=10, lr=0.005)
    noise_stage: StageConfig = StageConfig(epochs=10, lr=0.005)
    retrain: StageConfig = StageConfig(epochs=5, lr=0.001)
    noise: NoiseConfig = NoiseConfig()
    calib_batches: int = 10
    catalog: str | None = None
    assignment: str | None = None
    limit_train_batches: float | int = 1.0
    limit_val_batches: float | int = 1.0
    progress_bar: bool = True
    threads: int = 0

    def stage(self, name: str) -> StageConfig:
        """The optimisation block of stage ``name``."""
        return {"float": self.float_stage, "qat": self.qat, "noise": self.noise_stage,
                "retrain": self.retrain}[name]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON friendly)."""
        d = dataclasses.asdict(self)
        for key in ("float_stage", "qat", "noise_stage", "retrain"):
            d[key]["milestones"] = list(d[key]["milestones"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from plain data; unknown keys raise ConfigError naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"training config: unknown keys {unknown}; known keys: "
                              f"{sorted(known)}")
        kw = dict(d)
        for key in ("float_stage", "qat", "noise_stage", "retrain"):
            if isinstance(kw.get(key), dict):
                kw[key] = _sub(StageConfig, kw[key], key)
        if isinstance(kw.get("noise"), dict):
            kw["noise"] = _sub(NoiseConfig, kw["noise"], "noise")
        return cls(**kw)


def _sub(kind, d: dict[str, Any], where: str):
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"training config {where}: unknown keys {unknown}; known: {sorted(known)}")
    return kind(**d)


def load_config(source: TrainConfig | dict[str, Any] | str | os.PathLike[str]) -> TrainConfig:
    """A TrainConfig from itself, plain data, or a YAML file."""
    if isinstance(source, TrainConfig):
        return source
    if isinstance(source, dict):
        return TrainConfig.from_dict(source)
    path = Path(source)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"training config file {path} does not exist") from None
    if not isinstance(data, dict):
        raise ConfigError(f"training config file {path}: expected a mapping, got "
                          f"{type(data).__name__}")
    return TrainConfig.from_dict(data)
