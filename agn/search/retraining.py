"""Score candidates after a short retraining (MARLIN's one-epoch protocol), bit-exactly."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from agn.config import TrainConfig
from agn.data.generic import DataModule
from agn.export import export
from agn.intsim import integer_split, predict
from agn.layers import approximate_, compensate_, input_pmfs, round_operands_
from agn.run import datamodule, load_stage_model
from agn.training import finetune


class RetrainingScorer:
    """Validation error of a candidate after ``epochs`` epochs of approximate retraining.

    Each call loads the model the ``stage`` stage left in ``run_dir``, gives it the candidate's
    multipliers (plus the ``fixed`` layers), retrains it with the ``retrain`` stage's optimiser
    settings (at most ``batches`` batches per epoch, 0 = all), exports it to an integer network
    and scores that network bit-exactly on the first ``val_samples`` validation images (0 = all),
    quantized by the retrained model's own input quantizer.

    Picklable (a path, a frozen configuration and numbers), so Dask workers run it; the workers
    must see ``run_dir`` and the dataset.
    """

    def __init__(self, run_dir: str | Path, config: TrainConfig, epochs: int = 1,
                 batches: int = 0, val_samples: int = 0, stage: str = "noise",
                 fixed: Mapping[str, str] | None = None) -> None:
        if epochs < 1 or batches < 0 or val_samples < 0:
            raise ValueError(f"RetrainingScorer: expected epochs >= 1, batches >= 0 and "
                             f"val_samples >= 0, got {epochs}, {batches}, {val_samples}")
        self.run_dir, self.config, self.stage = Path(run_dir), config, stage
        self.epochs, self.batches, self.val_samples = epochs, batches, val_samples
        self.fixed = dict(fixed or {})
        self._dm: DataModule | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dm": None}  # workers load the data themselves

    @property
    def label(self) -> str:
        """How candidates are scored (recorded with the search so resumes score alike)."""
        per = f", {self.batches} batches each" if self.batches else ""
        comp = ", error-mean compensated" if self.config.compensate else ""
        comp += ", operands rounded" if self.config.round_operands else ""
        return f"bit-exact after {self.epochs} retraining epoch(s){per}{comp}"

    def _datamodule(self) -> DataModule:
        if self._dm is None:
            self._dm = datamodule(self.config, setup=True)
        return self._dm

    def __call__(self, assignment: Mapping[str, str]) -> float:
        """Error of the retrained integer network with ``assignment`` on the validation images."""
        return self.errors(assignment, ("val",))["val"]

    def errors(self, assignment: Mapping[str, str], splits: Sequence[str]) -> dict[str, float]:
        """{split: error} of one retraining of ``assignment`` on each data split of ``splits``
        (``val`` limited to ``val_samples`` images, the others whole)."""
        dm = self._datamodule()
        model = load_stage_model(self.stage, self.run_dir, self.config, dm)
        approximate_(model, {**self.fixed, **assignment})
        if self.config.round_operands:
            round_operands_(model)
        if self.config.compensate:
            batches = (x for x, _ in dm.train_dataloader())
            compensate_(model, input_pmfs(model, batches, self.config.calib_batches))
        finetune(model, dm, self.config, self.epochs, self.batches)
        net = export(model, dm.input_shape, name="candidate")
        out = {}
        for split in splits:
            x, y = integer_split(model, dm, split, self.val_samples if split == "val" else 0)
            out[split] = float(np.mean(predict(net, x) != y))
        return out
