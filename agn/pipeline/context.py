"""What the stages share: the run directory, the configuration, the data and stage models."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from torch import nn

import deploy
from agn.config import PipelineConfig, TrainConfig
from agn.data.generic import DataModule
from agn.intsim import integer_split
from agn.run import SEARCH_DIR, datamodule, load_stage_model
from agn.userrun import SPLIT_FILES


@dataclass
class Context:
    """Lazily built shared state of one pipeline run, plus run-time options that do not change
    results (progress bars, Dask workers, torch threads of the training stages: one thread is
    fastest for the small default networks, 0 keeps torch's default for large ones; the caller
    sets the threads of the other stages with :func:`agn.threads.torch_threads`)."""

    run_dir: Path
    cfg: PipelineConfig
    progress: bool = True
    workers: int | None = None
    scheduler: str | None = None
    threads: int = 1

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"Context.threads: expected >= 0 (0 = torch default), got "
                             f"{self.threads}")

    @cached_property
    def dm(self) -> DataModule:
        """The data module, set up (splits fixed by the seed)."""
        return datamodule(self.cfg.train, setup=True)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input."""
        return self.dm.input_shape

    def model(self, stage: str) -> nn.Module:
        """The model as the stage ``stage`` left it (from its checkpoint), in eval mode."""
        model = load_stage_model(stage, self.run_dir, self.train_config(), self.dm)
        return model.eval()

    def integer_split(self, model: nn.Module, split: str, limit: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 inputs as the model's input quantizer codes them, labels) of a data split."""
        return integer_split(model, self.dm, split, limit)

    def search_network(self) -> deploy.Network:
        """The integer network the search scores candidates on (``RUN/search``)."""
        return deploy.load(self.run_dir / SEARCH_DIR)

    def search_split(self, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(encoded inputs, labels) the search scores on: the validation split as the
        noise-trained model's input quantizer codes it, its first ``limit`` images (0 = all)."""
        return self.integer_split(self.model("noise"), "val", limit)

    def heldout_splits(self, names: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(encoded inputs, labels) of each of ``names`` the data holds (non-empty), as the
        noise-trained model's input quantizer codes them."""
        held = [s for s in names if len(self.dm.split(s))]
        model = self.model("noise") if held else None
        return {s: self.integer_split(model, s) for s in held}

    def split_sizes(self) -> dict[str, int]:
        """Images of the training and validation splits."""
        return {"train": len(self.dm.split("train")), "val": len(self.dm.split("val"))}

    @property
    def num_classes(self) -> int:
        """Number of classes of the data."""
        return int(self.dm.num_classes)

    def runner(self):
        """Context manager giving the candidate runner: Dask when asked, else None (serial)."""
        if self.workers or self.scheduler:
            from agn.search import dask_runner

            return dask_runner(workers=self.workers, scheduler=self.scheduler)
        return nullcontext(None)

    def train_config(self, assignment: str | None = None) -> TrainConfig:
        """The training configuration with this run's thread setting."""
        return self.cfg.train_config(assignment, self.threads)


@dataclass
class UserRunContext(Context):
    """The search's view of a directory :func:`agn.write_run` wrote: its integer network
    (``RUN/network.json``) and encoded validation split (``RUN/integer_val.npz``); it has no
    training stages, data module or model."""

    @property
    def dm(self) -> DataModule:
        raise self._missing("data module")

    def model(self, stage: str) -> nn.Module:
        raise self._missing(f"model of stage {stage!r}")

    def _missing(self, what: str) -> ValueError:
        return ValueError(f"{self.run_dir} was written by agn.write_run: it holds no {what} "
                          f"(the training stages run in 'agn pipeline')")

    def search_network(self) -> deploy.Network:
        return deploy.load(self.run_dir)

    def search_split(self, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._encoded("val")
        return (x, y) if not limit else (x[:limit], y[:limit])

    def _encoded(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        with np.load(self.run_dir / SPLIT_FILES[split], allow_pickle=False) as f:
            return f["x"], f["y"]

    def heldout_splits(self, names: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The encoded splits :func:`agn.write_run` wrote among ``names`` (its test split)."""
        return {s: self._encoded(s) for s in names
                if s in SPLIT_FILES and (self.run_dir / SPLIT_FILES[s]).exists()}

    def split_sizes(self) -> dict[str, int]:
        """Images of the encoded validation split (the training split is not in the run)."""
        return {"val": len(self._encoded("val")[1])}

    @property
    def num_classes(self) -> int:
        """Number of classes: the integer network's output features."""
        net = self.search_network()
        return int(net.infos[net.output.name].shape[-1])
