"""Lightning data modules: 8x8 digits (bundled), MNIST / Fashion-MNIST (IDX), CIFAR-10."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

from agn.data.base import ImageDataModule
from agn.data.digits import DigitsDataModule
from agn.data.files import Cifar10DataModule, IdxDataModule
from agn.data.readers import DataFileError, read_cifar_batch, read_idx

__all__ = ["DATAMODULES", "Cifar10DataModule", "DataFileError", "DigitsDataModule",
           "IdxDataModule", "ImageDataModule", "build_datamodule", "read_cifar_batch", "read_idx"]

DATAMODULES: dict[str, Callable[..., ImageDataModule]] = {
    "digits": DigitsDataModule,
    "mnist": partial(IdxDataModule, dataset="mnist"),
    "fashion-mnist": partial(IdxDataModule, dataset="fashion-mnist"),
    "cifar10": Cifar10DataModule,
}


def build_datamodule(name: str, **kwargs) -> ImageDataModule:
    """The data module registered as ``name`` (``digits``, ``mnist``, ``fashion-mnist``,
    ``cifar10``)."""
    if name not in DATAMODULES:
        raise ValueError(f"dataset {name!r}: unknown; known datasets: {', '.join(DATAMODULES)}")
    return DATAMODULES[name](**kwargs)
