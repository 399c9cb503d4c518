"""``write_run``: a run directory from a user's own trained model and LightningDataModule.

What the command line reads from a run directory, written from objects instead of the toolkit's
model and data registries (file names as in :mod:`agn.run`)::

    RUN/network.json, .npz       the integer network (agn deploy)
    RUN/sigmas.json              the layers' learned sigmas (agn match)
    RUN/operand_stats.npz        the layers' operand statistics (agn match)
    RUN/integer_val.npz          the validation split as encoded uint8 inputs ``x`` and labels ``y``
    RUN/integer_test.npz         the test split, likewise

The model is copied to the CPU first; the user's model and device are left as they are.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import deploy
from agn.export import export
from agn.layers import approx_layers, sigma_table
from agn.quant import ActQuant
from agn.stats import write_operand_stats
from errormodels.sigmas import sigmas_document
from hwlib.fileio import atomic_path, atomic_write_json

__all__ = ["SPLIT_FILES", "RunWriteError", "write_run"]

#: The encoded split files, by split.
SPLIT_FILES = {"val": "integer_val.npz", "test": "integer_test.npz"}


class RunWriteError(ValueError):
    """A model or data module ``write_run`` cannot use."""


def _xy(batch: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    if (isinstance(batch, (tuple, list)) and len(batch) >= 2
            and all(isinstance(t, torch.Tensor) for t in batch[:2])):
        return batch[0], batch[1]
    raise RunWriteError(f"write_run: {where} batches must be (x, y) tensors, got "
                        f"{type(batch).__name__}")


def _loader(datamodule: Any, split: str) -> Iterable[Any]:
    method = {"train": "train_dataloader", "val": "val_dataloader",
              "test": "test_dataloader"}[split]
    fn = getattr(datamodule, method, None)
    if fn is None:
        raise RunWriteError(f"write_run: the data module {type(datamodule).__name__} has no "
                            f"{method}()")
    return fn()


def _first_images(loader: Iterable[Any], n: int, where: str) -> Iterator[torch.Tensor]:
    seen = 0
    for batch in loader:
        x = _xy(batch, where)[0][:n - seen].cpu()
        seen += len(x)
        yield x
        if seen >= n:
            return


def _encoded(model: nn.Module, loader: Iterable[Any], split: str
             ) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    with torch.no_grad():
        for batch in loader:
            x, y = _xy(batch, split)
            xs.append(model.quant_in.to_int(x.cpu()).to(torch.uint8).numpy())
            ys.append(y.cpu().numpy())
    if not xs:
        raise RunWriteError(f"write_run: the {split} split is empty")
    return np.concatenate(xs), np.concatenate(ys)


def write_run(model: nn.Module, run_dir: str | os.PathLike[str], datamodule: Any, *,
              name: str = "network", samples: int = 512, n_fields: int = 64, seed: int = 0,
              splits: tuple[str, ...] = ("val", "test"),
              mean: Any = None, std: Any = None) -> Path:
    """Write the run directory of a trained, quantized model (see the module docstring).

    Args:
        model: a calibrated model of :func:`agn.prepare` (or the toolkit's), any mode but
            float, on any device; its sigmas are those its noise training learned.
        run_dir: the run directory (created).
        datamodule: any LightningDataModule (set up) whose batches are ``(x, y)``, ``x`` as
            the model receives it.
        name: the network's name in the IR.
        samples: training images the operand statistics see (the first ones the training
            loader yields).
        n_fields: receptive fields kept per layer.
        seed: seed of the statistics' field sampling.
        splits: the splits written as encoded integer inputs with labels.
        mean, std: the input normalisation, when ``x`` is normalised and the network should
            encode raw images (see :func:`agn.export.export`).

    Returns:
        The run directory.

    Raises:
        RunWriteError: a model without an input quantizer, or batches that are not ``(x, y)``.
        ExportError: a structure the integer network cannot express.
    """
    if not isinstance(getattr(model, "quant_in", None), ActQuant):
        raise RunWriteError(f"write_run: expected a prepared model (agn.prepare) with a "
                            f"'quant_in' input quantizer, got {type(model).__name__}")
    if not approx_layers(model):
        raise RunWriteError("write_run: the model has no approximable layer")
    unknown = sorted(set(splits) - set(SPLIT_FILES))
    if unknown:
        raise RunWriteError(f"write_run: splits {unknown} unknown; expected some of "
                            f"{sorted(SPLIT_FILES)}")
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    cpu = copy.deepcopy(model).cpu().eval()
    first = next(_first_images(_loader(datamodule, "train"), 1, "train"))
    shape = tuple(int(v) for v in first.shape[1:])
    with torch.no_grad():
        cpu(first)  # records every layer's multiplication count
    deploy.save(export(cpu, shape, name, mean=mean, std=std), run)
    atomic_write_json(run / "sigmas.json", sigmas_document(sigma_table(cpu)))
    write_operand_stats(run, cpu, _first_images(_loader(datamodule, "train"), samples, "train"),
                        n_fields=n_fields, seed=seed)
    for split in splits:
        x, y = _encoded(cpu, _loader(datamodule, split), split)
        with atomic_path(run / SPLIT_FILES[split]) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, x=x, y=y)
    return run
