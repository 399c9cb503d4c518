"""What a stage's ``last.ckpt`` needs beyond Lightning's own state so that a killed fit resumes
exactly: the global random generators, and a metrics log that keeps the epochs before the kill.

The data module saves its own generators (:meth:`agn.data.base.ImageDataModule.state_dict`).
"""
from __future__ import annotations

import csv
import random
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

__all__ = ["GlobalRngState", "ResumableCSVLogger", "lightning_interrupts"]


class GlobalRngState(pl.Callback):
    """Save Python's, NumPy's and torch's (CPU) global generator states in every checkpoint and
    restore them on resume: the noise layers' draws and dropout continue where they stopped.

    """

    def state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        version, internal, py_gauss = random.getstate()
        return {"torch": torch.get_rng_state(),
                "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos),
                          int(has_gauss), float(gauss)],
                "python": [version, list(internal), py_gauss]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        name, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, internal, py_gauss = state_dict["python"]
        random.setstate((version, tuple(internal), py_gauss))


class ResumableCSVLogger(CSVLogger):
    """A CSVLogger that writes every row to ``metrics.csv`` as it is logged and, resuming after
    ``resumed_epochs`` finished epochs, keeps the rows of those epochs (Lightning's would delete
    the file) and drops rows of a later, unfinished epoch, which the resumed fit logs again.

    Only a kill in the instant between an epoch's checkpoint and its training row (logged
    right after the checkpoint by Lightning) loses that one row."""

    def __init__(self, save_dir: str | Path, name: str, resumed_epochs: int = 0) -> None:
        super().__init__(save_dir, name=name, version="", flush_logs_every_n_steps=1)
        self.resumed_epochs = resumed_epochs

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is not None:
            return self._experiment
        path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        kept = []
        if self.resumed_epochs and path.is_file():
            with open(path, newline="") as f:
                kept = [r for r in csv.DictReader(f)
                        if r.get("epoch", "").isdigit() and int(r["epoch"]) < self.resumed_epochs]
        writer = super().experiment  # deletes metrics.csv; the kept rows are written back first
        writer.metrics[:0] = kept
        return writer


@contextmanager
def lightning_interrupts() -> Iterator[None]:
    """Give back the KeyboardInterrupt Lightning turns into ``sys.exit(1)`` (after its "Detected
    KeyboardInterrupt" message) inside ``fit``/``validate``/``test``, and restore the SIGINT
    handler it replaces with SIG_IGN, so callers can say where the run stopped."""
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    except SystemExit as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise
    finally:
        if main and handler is not None and signal.getsignal(signal.SIGINT) != handler:
            signal.signal(signal.SIGINT, handler)
