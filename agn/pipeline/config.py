"""Pipeline configuration: the defaults of ``agn pipeline`` and its ``--quick`` budget."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from agn.training import TrainConfig


@dataclass(frozen=True)
class PipelineConfig:
    """Everything ``agn pipeline`` needs; recorded in ``pipeline.json`` so a resumed run matches.

    Attributes:
        dataset, data_args, model: what to train (``digits`` + ``lenet5`` by default).
        catalog: hwlib catalog the multipliers come from (``marlin:*``).
        lam, sigma_init, sigma_max, sigma_lr: noise-training hyperparameters (docs/noise_method.md).
        train: the rest of the training configuration (:class:`agn.training.TrainConfig`
            fields such as ``float_stage: {lr, optimizer, milestones, ...}`` or
            ``calib_batches``); ``epochs`` and the noise fields above take precedence.
        seed: seed of every random choice.
        epochs: epochs of the float, qat, noise and retrain stages.
        n_fields: receptive fields sampled per layer for the error model.
        stats_samples: training images the operand statistics see.
        pop_size, n_gen: NSGA-II budget; ``init`` seeded or random; ``baseline`` also runs
            the random-init search for comparison.
        val_samples: validation images each candidate is scored on (0 = all).
        candidate_epochs: epochs of approximate retraining before each candidate is scored
            (MARLIN's protocol is 1; 0 = score the noise-trained weights as they are).
        candidate_batches: training batches per such epoch (0 = the whole training split).
        max_loss: accuracy the chosen point may lose against the exact integer network.
        scales: tolerance factors of the extra seed assignments.
        uniform_points: uniform assignments (every layer on one multiplier) drawn beside the front.
        deploy_inputs: inputs the firmware is validated on.
    """

    dataset: str = "digits"
    data_args: dict[str, Any] = field(default_factory=lambda: {"batch_size": 64})
    model: str = "lenet5"
    catalog: str = "marlin:*"
    lam: float = 0.2
    sigma_init: float = 0.1
    sigma_max: float = 1.0
    sigma_lr: float = 0.05
    train: dict[str, Any] = field(default_factory=lambda: {
        "float_stage": {"lr": 0.05, "milestones": [20]}, "qat": {"lr": 0.005},
        "noise_stage": {"lr": 0.005}, "retrain": {"lr": 0.001}})
    seed: int = 0
    epochs: tuple[int, int, int, int] = (30, 10, 10, 5)
    n_fields: int = 64
    stats_samples: int = 512
    pop_size: int = 40
    n_gen: int = 15
    init: str = "seeded"
    baseline: bool = True
    val_samples: int = 0
    candidate_epochs: int = 0
    candidate_batches: int = 0
    max_loss: float = 0.01
    scales: tuple[float, ...] = (0.25, 0.5, 0.75, 1.5, 2.0, 3.0)
    uniform_points: int = 16
    deploy_inputs: int = 8

    def __post_init__(self) -> None:
        if len(self.epochs) != 4 or any(e < 0 for e in self.epochs):
            raise ValueError(f"PipelineConfig.epochs: expected 4 non-negative epoch counts "
                             f"(float, qat, noise, retrain), got {self.epochs}")
        if self.candidate_epochs < 0 or self.candidate_batches < 0:
            raise ValueError(f"PipelineConfig: candidate_epochs and candidate_batches expected "
                             f">= 0, got {self.candidate_epochs} and {self.candidate_batches}")
        if not 0 <= self.max_loss < 1:
            raise ValueError(f"PipelineConfig.max_loss: expected a fraction in [0, 1), got "
                             f"{self.max_loss}")
        object.__setattr__(self, "epochs", tuple(int(e) for e in self.epochs))
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))

    @classmethod
    def quick(cls, **overrides: Any) -> PipelineConfig:
        """A tiny budget that runs every stage in about a minute (smoke tests)."""
        base = dict(epochs=(12, 2, 3, 1), data_args={"batch_size": 32}, n_fields=16, stats_samples=128, pop_size=10, n_gen=3,
                    baseline=False, uniform_points=6, deploy_inputs=2, scales=(0.5, 2.0))
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON friendly) for ``pipeline.json``."""
        d = dataclasses.asdict(self)
        d["epochs"], d["scales"] = list(self.epochs), list(self.scales)
        return d

    def train_config(self, assignment: str | None = None, threads: int = 0) -> TrainConfig:
        """The training configuration of the four training stages (``threads``: torch CPU
        threads, 0 = torch's default; not part of the recorded configuration)."""
        d = TrainConfig().to_dict()
        for key, value in self.train.items():
            if key not in d:
                raise ValueError(f"PipelineConfig.train: unknown training field {key!r}; known: "
                                 f"{', '.join(sorted(d))}")
            d[key] = {**d[key], **value} if isinstance(d[key], dict) else value
        for key, epochs in zip(("float_stage", "qat", "noise_stage", "retrain"), self.epochs):
            d[key]["epochs"] = epochs
        d.update(model=self.model, data=self.dataset, data_args=dict(self.data_args),
                 seed=self.seed, assignment=assignment, threads=threads, catalog=self.catalog,
                 noise={"lam": self.lam, "sigma_init": self.sigma_init,
                        "sigma_max": self.sigma_max, "sigma_lr": self.sigma_lr})
        return TrainConfig.from_dict(d)
