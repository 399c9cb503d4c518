"""A user's own LightningDataModule in the pipeline: what the stages read from a data module.

The pipeline needs, besides the three loaders Lightning trains and evaluates with:

- ``input_shape`` (C, H, W), ``in_channels``, ``input_size``: the model's input, from the first
  validation batch (``input_size`` is H; the model builders take square inputs);
- ``num_classes``: the data module's own integer attribute ``num_classes`` (the model builder
  needs it);
- ``mean``/``std``: the input normalisation recorded in the integer network's Input node, the
  data module's own ``mean`` and ``std`` attributes when it has them (per channel), else none;
- ``split(name)``: the ``train``/``val``/``test`` split as one in-memory dataset (statistics,
  encoded integer inputs for the search and the firmware validation), gathered once from its
  loader; ``normalize`` is the identity, as the batches are ``x`` as the model receives it.

Any LightningDataModule (``pytorch_lightning`` or ``lightning.pytorch``) whose batches are
``(x, y)`` works; what is missing is named when it is first needed.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
from torch.utils.data import TensorDataset

from agn.data.base import ImageDataModule
from agn.importing import import_object

__all__ = ["DataModule", "UserDataModule", "build_user_datamodule"]

LOADERS = {"train": "train_dataloader", "val": "val_dataloader", "test": "test_dataloader"}


class DataModule(Protocol):
    """What the pipeline's stages read from a data module (ImageDataModule, UserDataModule)."""

    @property
    def input_shape(self) -> tuple[int, int, int]: ...
    @property
    def in_channels(self) -> int: ...
    @property
    def input_size(self) -> int: ...
    @property
    def num_classes(self) -> int: ...

    mean: Any
    std: Any

    def prepare_data(self) -> None: ...
    def setup(self, stage: str | None = None) -> None: ...
    def split(self, name: str) -> TensorDataset: ...
    def normalize(self, x: torch.Tensor) -> torch.Tensor: ...
    def train_dataloader(self) -> Any: ...
    def val_dataloader(self) -> Any: ...
    def test_dataloader(self) -> Any: ...


class UserDataModule(pl.LightningDataModule):
    """A user's LightningDataModule with batches ``(x, y)``, seen through :class:`DataModule`.

    Lightning's hooks (data preparation, setup, loaders, batch transfer, state) go to the
    user's module unchanged, so training on it is training on the user's own module.

    Args:
        inner: the user's data module.
        name: how errors name it (its import string).
    """

    def __init__(self, inner: Any, name: str) -> None:
        super().__init__()
        self.inner, self.name = inner, name
        self._splits: dict[str, TensorDataset] = {}
        self._shape: tuple[int, int, int] | None = None

    # ---- Lightning's hooks: the user's ------------------------------------------------------
    def prepare_data(self) -> None:
        self.inner.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.inner.setup(stage)

    def teardown(self, stage: str | None = None) -> None:
        self._hook("teardown", stage)

    def train_dataloader(self) -> Any:
        return self._loader("train")

    def val_dataloader(self) -> Any:
        return self._loader("val")

    def test_dataloader(self) -> Any:
        return self._loader("test")

    def transfer_batch_to_device(self, batch: Any, device: torch.device,
                                 dataloader_idx: int) -> Any:
        return self._hook("transfer_batch_to_device", batch, device, dataloader_idx)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self._hook("on_before_batch_transfer", batch, dataloader_idx)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self._hook("on_after_batch_transfer", batch, dataloader_idx)

    def state_dict(self) -> dict[str, Any]:
        return self._hook("state_dict")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._hook("load_state_dict", state_dict)

    def _hook(self, name: str, *args: Any) -> Any:
        """The user's hook ``name``, else Lightning's default."""
        fn = getattr(self.inner, name, None)
        return (fn if callable(fn) else getattr(super(), name))(*args)

    # ---- what the pipeline reads ----------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the first validation batch's inputs."""
        if self._shape is None:
            x = next(iter(self._batches("val")))[0]
            if x.dim() != 4:
                raise ValueError(f"data module {self.name}: expected image batches (N, C, H, W), "
                                 f"got inputs of shape {tuple(x.shape)}")
            c, h, w = (int(v) for v in x.shape[1:])
            self._shape = (c, h, w)
        return self._shape

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]

    @property
    def input_size(self) -> int:
        """H of the inputs (the model builders take square inputs)."""
        _, h, w = self.input_shape
        if h != w:
            raise ValueError(f"data module {self.name}: inputs of {h}x{w} pixels; the model "
                             f"builders take square inputs (input_size)")
        return h

    @property
    def num_classes(self) -> int:
        """The user's ``num_classes`` attribute."""
        n = getattr(self.inner, "num_classes", None)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"data module {self.name}: expected an integer attribute "
                             f"'num_classes' (the model is built with it), got {n!r}; set "
                             f"self.num_classes in the data module")
        return n

    @property
    def mean(self) -> Any:
        """The user's per-channel input normalisation ``mean`` (None when it has none)."""
        return self._norm()[0]

    @property
    def std(self) -> Any:
        """The user's per-channel ``std`` (None when it has none)."""
        return self._norm()[1]

    def _norm(self) -> tuple[Any, Any]:
        mean, std = getattr(self.inner, "mean", None), getattr(self.inner, "std", None)
        if (mean is None) != (std is None):
            raise ValueError(f"data module {self.name}: has "
                             f"{'mean' if std is None else 'std'} but not "
                             f"{'std' if std is None else 'mean'}; the input normalisation needs "
                             f"both (per channel) or neither")
        return mean, std

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The identity: the user's batches are the model's inputs."""
        return x

    def split(self, name: str) -> TensorDataset:
        """The split ``name`` gathered from its loader (once; the training loader under a
        forked random state, so gathering it changes no random stream)."""
        if name not in LOADERS:  # a split the toolkit's modules may hold (confirm): none here
            return TensorDataset(torch.empty(0), torch.empty(0, dtype=torch.long))
        if name not in self._splits:
            with torch.random.fork_rng(devices=[]):
                xs, ys = zip(*((x.cpu(), y.cpu()) for x, y in self._batches(name)))
            self._splits[name] = TensorDataset(torch.cat(xs), torch.cat(ys))
        return self._splits[name]

    def _loader(self, split: str) -> Any:
        fn = getattr(self.inner, LOADERS[split], None)
        if not callable(fn):
            raise ValueError(f"data module {self.name}: has no {LOADERS[split]}(); the pipeline "
                             f"needs the train, val and test loaders")
        return fn()

    def _batches(self, split: str) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        empty = True
        for batch in self._loader(split):
            if not (isinstance(batch, (tuple, list)) and len(batch) >= 2
                    and all(isinstance(t, torch.Tensor) for t in batch[:2])):
                raise ValueError(f"data module {self.name}: {split} batches must be (x, y) "
                                 f"tensors, got {type(batch).__name__}")
            empty = False
            yield batch[0], batch[1]
        if empty:
            raise ValueError(f"data module {self.name}: the {split} loader yields no batch")


def build_user_datamodule(spec: str, args: dict[str, Any] | None = None
                          ) -> ImageDataModule | UserDataModule:
    """The data module an import string names, built with ``args``: a subclass of the toolkit's
    ImageDataModule as it is, any other LightningDataModule as a :class:`UserDataModule`.

    Raises:
        ValueError: the string does not import, the object is not callable, ``args`` do not fit
            it, or what it builds lacks a loader; naming the string and what was expected.
    """
    what = "a LightningDataModule class (or a function returning one) whose batches are (x, y)"
    obj = import_object(spec, what)
    if not callable(obj):
        raise ValueError(f"{spec!r}: {type(obj).__name__} {obj!r} is not callable; expected "
                         f"{what}")
    try:
        dm = obj(**(args or {}))
    except TypeError as exc:
        raise ValueError(f"{spec!r}: cannot be built with datamodule_args {args or {}}: "
                         f"{exc}") from None
    if isinstance(dm, ImageDataModule):
        return dm
    missing = [m for m in (*LOADERS.values(), "prepare_data", "setup")
               if not callable(getattr(dm, m, None))]
    if missing:
        raise ValueError(f"{spec!r} built a {type(dm).__name__} without {', '.join(missing)}; "
                         f"expected {what}")
    return UserDataModule(dm, spec)
