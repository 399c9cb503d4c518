"""The configuration schema: training (per-stage optimisation, learned noise), error-model
matching, search and deployment, composed into the pipeline's configuration.

One default per field: ``agn train`` and ``agn pipeline`` share :class:`TrainConfig`, and the
default pipeline needs no configuration file.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from agn.config.typed import ConfigError, Typed, build, check

__all__ = [
    "TRAIN_STAGES",
    "MatchConfig",
    "NoiseConfig",
    "PipelineConfig",
    "SearchSettings",
    "StageConfig",
    "TrainConfig",
    "deep_merge",
    "epochs_data",
]

TRAIN_STAGES = ("float", "qat", "noise", "retrain")
STAGE_FIELDS = ("float_stage", "qat", "noise_stage", "retrain")  # TrainConfig block per stage


@dataclass(frozen=True)
class StageConfig(Typed):
    """Optimisation of one training stage.

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

    def validate(self) -> None:
        check(self.epochs >= 0, "epochs", self.epochs, "an epoch count >= 0")
        check(self.lr > 0, "lr", self.lr, "a learning rate > 0")
        check(self.optimizer in ("sgd", "adam"), "optimizer", self.optimizer, "'sgd' or 'adam'")
        check(self.momentum >= 0, "momentum", self.momentum, "a momentum >= 0")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a decay >= 0")
        check(all(m >= 1 for m in self.milestones), "milestones", list(self.milestones),
              "epochs >= 1")
        check(self.gamma > 0, "gamma", self.gamma, "a decay factor > 0")


@dataclass(frozen=True)
class NoiseConfig(Typed):
    """Learned-noise hyperparameters: loss ``CE - lam * sum_l (c_l/C) min(|s_l|, s_max)``.

    Attributes:
        lam: lambda, the weight of the noise reward.
        sigma_init: initial sigma of every layer.
        sigma_max: cap of each sigma inside the reward.
        sigma_lr: learning rate of the sigmas (null: the stage's lr).
        per_channel: learn one sigma per output channel (each channel's reward weighted by its
            multiplications, so equal channel sigmas give the per-layer reward); filter
            matching then takes each channel's tolerance from its own sigma.
    """

    lam: float = 0.2
    sigma_init: float = 0.1
    sigma_max: float = 1.0
    sigma_lr: float | None = 0.05
    per_channel: bool = False

    def validate(self) -> None:
        check(self.lam >= 0, "lam", self.lam, "lambda >= 0")
        check(self.sigma_init >= 0, "sigma_init", self.sigma_init, "a sigma >= 0")
        check(self.sigma_max > 0, "sigma_max", self.sigma_max, "a sigma cap > 0")
        check(self.sigma_lr is None or self.sigma_lr > 0, "sigma_lr", self.sigma_lr,
              "a learning rate > 0 or null")


#: Lightning accelerators a training configuration may name.
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


@dataclass(frozen=True)
class TrainConfig(Typed):
    """The training stages' configuration (``agn train``; the ``train`` block of a pipeline).

    Attributes:
        model: registry name (``lenet5``, ``marlin_mnist``, ``resnet8``, ...).
        data: dataset name (``digits``, ``mnist``, ``fashion-mnist``, ``cifar10``).
        data_args: keyword arguments of the data module (``root``, ``batch_size``, ``shift``...),
            checked against its constructor.
        datamodule: an import string ``package.module:Class`` naming the user's own
            LightningDataModule (batches ``(x, y)``, see :mod:`agn.data.generic`); when set it
            replaces ``data`` and ``data_args``.
        datamodule_args: keyword arguments ``datamodule`` is built with.
        seed: seed of the splits, shuffling, augmentation, initialisation, noise and search.
        float_stage / qat / noise_stage / retrain: per-stage optimisation.
        noise: learned-noise hyperparameters.
        calib_batches: observer warm-up batches before QAT.
        catalog: the multiplier catalog the network will run on (``marlin:*``,
            ``evo:mul8s_*``, ...): QAT quantizes every approximable layer's input to the codes all
            its multipliers accept (0..127 for signed EvoApprox circuits, 0..255 for MARLIN); the
            pipeline matches and searches over it; null (``agn train`` only) keeps 0..255.
        assignment: assignment file of the retrain stage (default ``RUN/assignment.json``).
        limit_train_batches / limit_val_batches: Lightning limits (fractions or counts).
        progress_bar: show Lightning's progress bar.
        threads: torch CPU threads (0 keeps torch's default; 1 is fastest for tiny models on a
            busy machine); ``agn pipeline`` sets it from ``--threads``.
        accelerator: Lightning's accelerator of the training stages (``auto``: a GPU when there
            is one; ``cpu``, ``gpu``, ``cuda``, ``mps``). Approximate mode (retraining) runs on
            the CPU only.
        compensate: error-mean compensation in the retrain stage (and per-candidate
            retraining): each layer's expected accumulated error under its assigned multiplier,
            measured on ``calib_batches`` training batches, is folded into its integer bias
            (zero run-time cost; exported, so the firmware carries it). On by default: it wins
            on every circuit measured (README "Recovery features").
        round_operands: multiplier-aware operand rounding in the retrain stage (and
            per-candidate retraining): circuits that ignore low operand bits get activations
            offset so their truncation rounds, and weights on the values they keep (a no-op for
            the others). On by default, as ``compensate``.
        calibration: range estimator of the activation observers during QAT calibration and
            training: ``max`` (the batch maximum, EMA), ``percentile`` (``calib_percentile``
            of the values), ``mse`` (the clip with least quantization error) or ``learned``
            (PACT's clip of each unsigned quantizer, trained in QAT with LSQ's gradient from the
            warm-up's maximum, then frozen; not the default: it did not win on the recovery
            bench, README).
        calib_percentile: the percentile of ``calibration: percentile``.
        retrain_distill: weight ``d`` in [0, 1] of distillation from the exact integer network's
            logits during approximate retraining (retrain stage and candidate retraining):
            loss ``(1 - d) CE + d T^2 KL``; 0 = plain cross-entropy.
    """

    model: str = "lenet5"
    data: str = "digits"
    data_args: dict[str, Any] = field(default_factory=lambda: {"batch_size": 64})
    datamodule: str | None = None
    datamodule_args: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    float_stage: StageConfig = StageConfig(epochs=40, lr=0.05, milestones=(30,))
    qat: StageConfig = StageConfig(epochs=10, lr=0.005)
    noise_stage: StageConfig = StageConfig(epochs=10, lr=0.005)
    retrain: StageConfig = StageConfig(epochs=5, lr=0.001)
    noise: NoiseConfig = NoiseConfig()
    calib_batches: int = 10
    catalog: str | None = "evo:mul8s_*"
    assignment: str | None = None
    limit_train_batches: float | int = 1.0
    limit_val_batches: float | int = 1.0
    progress_bar: bool = True
    threads: int = 0
    accelerator: str = "auto"
    compensate: bool = True
    round_operands: bool = True
    calibration: str = "max"
    calib_percentile: float = 99.99
    retrain_distill: float = 0.0

    def validate(self) -> None:
        check(self.calib_batches >= 1, "calib_batches", self.calib_batches, "a count >= 1")
        check(self.calibration in ("max", "percentile", "mse", "learned"), "calibration",
              self.calibration, "'max', 'percentile', 'mse' or 'learned'")
        check(50 < self.calib_percentile <= 100, "calib_percentile", self.calib_percentile,
              "a percentile in (50, 100]")
        check(0 <= self.retrain_distill <= 1, "retrain_distill", self.retrain_distill,
              "a weight in [0, 1]")
        for name in ("limit_train_batches", "limit_val_batches"):
            v = getattr(self, name)
            check(0 < v <= 1 if isinstance(v, float) else v >= 1, name, v,
                  "a fraction in (0, 1] or a batch count >= 1")
        check(self.threads >= 0, "threads", self.threads, "a thread count >= 0 (0 = torch's)")
        check(self.datamodule is None or ":" in self.datamodule, "datamodule", self.datamodule,
              "an import string 'package.module:Class' or null")
        check(self.datamodule is not None or not self.datamodule_args, "datamodule_args",
              self.datamodule_args, "no arguments without a datamodule")
        check(self.accelerator in ACCELERATORS, "accelerator", self.accelerator,
              f"one of {list(ACCELERATORS)}")

    def stage(self, name: str) -> StageConfig:
        """The optimisation block of training stage ``name`` (``float``, ``qat``, ...)."""
        if name not in TRAIN_STAGES:
            raise ValueError(f"training stage {name!r}: expected one of {list(TRAIN_STAGES)}")
        return getattr(self, STAGE_FIELDS[TRAIN_STAGES.index(name)])

    @property
    def dataset(self) -> str:
        """What the stages train on, as titles name it: ``datamodule`` when set, else ``data``."""
        return self.datamodule or self.data

    @property
    def epochs(self) -> tuple[int, int, int, int]:
        """Epochs of the float, qat, noise and retrain stages."""
        e = [self.stage(s).epochs for s in TRAIN_STAGES]
        return e[0], e[1], e[2], e[3]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON friendly)."""
        return _plain(self)

    @classmethod
    def from_dict(cls, d: Any) -> TrainConfig:
        """Build from plain data (every field type-checked; unknown fields refused)."""
        return build(cls, d)


@dataclass(frozen=True)
class MatchConfig(Typed):
    """Operand statistics and error-model matching.

    Attributes:
        n_fields: receptive fields sampled per layer for the error model.
        stats_samples: training images the operand statistics see.
        scales: tolerance factors of the extra seed assignments of the search.
        compensate: match as if each channel's mean error were folded into its bias
            (predicted mean 0, the across-channel spread of the channel means removed), as the
            deployed network is by default (``train.compensate``).
    """

    n_fields: int = 64
    stats_samples: int = 512
    scales: tuple[float, ...] = (0.25, 0.5, 0.75, 1.5, 2.0, 3.0)
    compensate: bool = True

    def validate(self) -> None:
        check(self.n_fields >= 1, "n_fields", self.n_fields, "a field count >= 1")
        check(self.stats_samples >= 1, "stats_samples", self.stats_samples, "an image count >= 1")
        check(all(s > 0 for s in self.scales), "scales", list(self.scales), "factors > 0")


SEARCH_CACHE_BYTES = 1 << 30
"""Default ``search.cache_bytes`` (1 GiB)."""
RESULT_NEUTRAL = ("search.cache_bytes",)
"""Settings results do not depend on (dotted paths): a resumed run may change them."""


@dataclass(frozen=True)
class SearchSettings(Typed):
    """NSGA-II search and the choice of the deployed point.

    Attributes:
        pop_size, n_gen: NSGA-II budget.
        init: ``seeded`` (error-model seeds) or ``random`` initial population.
        baseline: also run the random-init search for comparison.
        val_samples: validation images each candidate is scored on (0 = all).
        candidate_epochs: epochs of approximate retraining before each candidate is scored
            (MARLIN's protocol is 1; 0 = score the noise-trained weights as they are).
        candidate_batches: training batches per such epoch (0 = the whole training split).
        max_loss: accuracy the chosen point may lose against the exact integer network.
        uniform_points: uniform assignments (every layer on one multiplier) drawn beside the front.
        compensate: score candidates with error-mean compensation (each layer's bias lowered by
            its expected error under the candidate's multiplier); the retrain stage then
            compensates too (``train.compensate`` is implied). The held-out re-scoring of the
            front follows the same setting.
        round_operands: score candidates with their activation codes rounded for the circuits
            that ignore low activation bits (:class:`agn.ir_rounding.ActivationRounding`, no
            re-export; weights are not rounded in this scoring: their grid changes a layer's
            weight scale); the retrain stage then rounds too (``train.round_operands`` is
            implied).
        cache_bytes: budget of the prefix activations each scorer (each Dask worker) keeps
            between candidates (0 = no cache). Results do not depend on it, so a resumed run
            may change it.
        retrain_points: front points (spread over the front, below the exact energy) that are,
            with the error-model assignment, each retrained ``retrain_point_epochs`` epochs
            (``candidate_batches`` batches each) after the search; the deployed point is the
            cheapest of them and the front's own choice within ``max_loss`` (0 = off).
        retrain_point_epochs: epochs of each such retraining.
        granularity: ``layer`` (one gene per layer), ``filter`` (one multiplier per group of
            ``group`` output channels: three genes per layer over the channel groups ranked by
            the error model, :class:`agn.search.groups.GroupedSpace`) or ``kernel`` (likewise
            over blocks of ``group`` output x ``in_group`` input channels).
        group: output channels per group at filter and kernel granularity.
        in_group: input channels per block at kernel granularity.
    """

    pop_size: int = 40
    n_gen: int = 15
    init: str = "seeded"
    baseline: bool = True
    val_samples: int = 0
    candidate_epochs: int = 0
    candidate_batches: int = 0
    max_loss: float = 0.01
    uniform_points: int = 16
    compensate: bool = True
    round_operands: bool = True
    cache_bytes: int = SEARCH_CACHE_BYTES
    retrain_points: int = 0
    retrain_point_epochs: int = 1
    granularity: str = "layer"
    group: int = 1
    in_group: int = 1

    def validate(self) -> None:
        check(self.pop_size >= 2, "pop_size", self.pop_size, "a population >= 2")
        check(self.n_gen >= 1, "n_gen", self.n_gen, "a generation count >= 1")
        check(self.init in ("seeded", "random"), "init", self.init, "'seeded' or 'random'")
        for name in ("val_samples", "candidate_epochs", "candidate_batches", "uniform_points",
                     "cache_bytes", "retrain_points"):
            check(getattr(self, name) >= 0, name, getattr(self, name), "a count >= 0")
        check(self.retrain_point_epochs >= 1, "retrain_point_epochs", self.retrain_point_epochs,
              "an epoch count >= 1")
        check(0 <= self.max_loss < 1, "max_loss", self.max_loss, "a fraction in [0, 1)")
        check(self.granularity in ("layer", "filter", "kernel"), "granularity", self.granularity,
              "'layer', 'filter' or 'kernel'")
        check(self.group >= 1, "group", self.group, "a group size >= 1")
        check(self.in_group >= 1, "in_group", self.in_group, "an input group size >= 1")


@dataclass(frozen=True)
class PipelineConfig(Typed):
    """Everything ``agn pipeline`` needs; recorded in ``pipeline.json`` so a resumed run matches.

    Attributes:
        train: the training stages (model, data, seed, catalog, per-stage optimisation, noise).
        match: operand statistics and error-model matching.
        search: NSGA-II and the choice of the deployed point.
        deploy_inputs: inputs the firmware is validated on.
    """

    train: TrainConfig = TrainConfig()
    match: MatchConfig = MatchConfig()
    search: SearchSettings = SearchSettings()
    deploy_inputs: int = 8

    def validate(self) -> None:
        check(self.deploy_inputs >= 1, "deploy_inputs", self.deploy_inputs, "a count >= 1")

    @property
    def seed(self) -> int:
        """The seed of every random choice (``train.seed``)."""
        return self.train.seed

    @property
    def catalog(self) -> str:
        """The multiplier catalog (``train.catalog``)."""
        return str(self.train.catalog)

    @classmethod
    def quick(cls, data: dict[str, Any] | None = None) -> PipelineConfig:
        """A tiny budget that runs every stage in about a minute (smoke tests), with ``data``
        (plain configuration data) merged over it."""
        return cls.from_dict(deep_merge(QUICK, data or {}))

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> PipelineConfig:
        """Plain data (any field may be left out: its default) merged over the defaults, every
        field type-checked."""
        if not isinstance(data, dict):
            return build(cls, data, where)  # the error names what was expected
        return build(cls, deep_merge(_plain(cls()), data), where)

    def train_config(self, assignment: str | None = None, threads: int = 0) -> TrainConfig:
        """The training configuration of the four training stages, with the run-time settings
        (the retrain stage's assignment file, torch threads) that are not recorded."""
        return dataclasses.replace(
            self.train, assignment=assignment, threads=threads,
            compensate=self.train.compensate or self.search.compensate,
            round_operands=self.train.round_operands or self.search.round_operands)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON friendly) for ``pipeline.json``."""
        return _plain(self)


def epochs_data(epochs: tuple[int, ...] | list[int]) -> dict[str, Any]:
    """Plain pipeline data setting the epochs of the float, qat, noise and retrain stages."""
    if len(epochs) != len(STAGE_FIELDS):
        raise ConfigError("epochs", f"expected {len(STAGE_FIELDS)} epoch counts (float, qat, "
                          f"noise, retrain), got {list(epochs)!r}")
    return {"train": {k: {"epochs": e} for k, e in zip(STAGE_FIELDS, epochs)}}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` merged into ``base`` (mappings recursively; other values replaced)."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = (deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict)
                  else v)
    return out


def _plain(obj: Any) -> dict[str, Any]:
    """A configuration dataclass as plain data (tuples as lists)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(obj))


# The quick budget keeps MARLIN's levels (its firmware path: a CSR write per layer) and its
# float milestone of before the default's changed (so older quick runs still resume).
QUICK: dict[str, Any] = deep_merge(epochs_data((12, 2, 3, 1)), {
    "train": {"data_args": {"batch_size": 32}, "catalog": "marlin:*",
              "float_stage": {"milestones": [20]}},
    "match": {"n_fields": 16, "stats_samples": 128, "scales": [0.5, 2.0]},
    "search": {"pop_size": 10, "n_gen": 3, "baseline": False, "uniform_points": 6},
    "deploy_inputs": 2})
