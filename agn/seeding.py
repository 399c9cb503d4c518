"""Lightning's seeding inside a context that gives the global RNGs back as they were."""
from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytorch_lightning as pl
import torch

__all__ = ["seeded"]

_SEED_ENV = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")  # what seed_everything records for workers


@contextmanager
def seeded(seed: int, workers: bool = True) -> Iterator[None]:
    """Run the block after ``pl.seed_everything(seed, workers=workers)`` (the same random
    numbers as Lightning's seeding) and restore Python's, NumPy's and torch's global RNG states
    and Lightning's seed environment variables afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    env = {k: os.environ.get(k) for k in _SEED_ENV}
    with torch.random.fork_rng(devices=[]):
        try:
            pl.seed_everything(seed, workers=workers, verbose=False)
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            for k, v in env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
