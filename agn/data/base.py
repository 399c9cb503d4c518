"""The shared LightningDataModule: seeded train/val/test splits of in-memory image arrays."""
from __future__ import annotations

import abc

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.dataloader import default_collate

from agn.data.augment import random_hflip, random_shift
from agn.data.readers import DataFileError

TEST_SPLIT_SEED = 12345  # datasets without an official test split use this fixed split


class ImageDataModule(pl.LightningDataModule, abc.ABC):
    """Images in memory, split into train / val / test, normalised with the training statistics.

    The validation split is carved from the training data with ``seed``; training batches are
    reshuffled every epoch (a seeded sampler) and augmented (shift, flip) on the training split
    only. Subclasses set ``in_channels``, ``input_size``, ``num_classes`` and implement
    :meth:`load` (and :meth:`prepare_data` when files may need downloading).

    Args:
        batch_size: training batch size.
        eval_batch_size: validation/test batch size.
        val_fraction: share of the training data held out for validation.
        confirm_fraction: share of the training data held out as the ``confirm`` split, which
            neither training nor the search sees (the pipeline re-scores its front on it);
            0 = none (the ``confirm`` split is empty and the other splits are as without it).
        seed: seed of the validation split, the shuffling and the augmentation.
        shift: maximum random shift in pixels (training only).
        hflip: random horizontal flips (training only).
        limit_train: use only the first N training samples after the split (0 = all).

    :meth:`setup` checks what :meth:`load` returns (:meth:`check`) before anything trains.
    """

    in_channels: int = 1
    input_size: int = 28
    num_classes: int = 10

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input."""
        return (self.in_channels, self.input_size, self.input_size)

    def __init__(self, batch_size: int = 128, eval_batch_size: int = 512,
                 val_fraction: float = 0.1, seed: int = 0, shift: int = 0, hflip: bool = False,
                 limit_train: int = 0, confirm_fraction: float = 0.0) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"{type(self).__name__}: val_fraction must be in (0, 1), got "
                             f"{val_fraction}")
        if not 0.0 <= confirm_fraction < 1.0 - val_fraction:
            raise ValueError(f"{type(self).__name__}: confirm_fraction must be in [0, "
                             f"1 - val_fraction) = [0, {1.0 - val_fraction:g}), got "
                             f"{confirm_fraction}")
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(f"{type(self).__name__}: batch sizes must be >= 1, got "
                             f"{batch_size}, {eval_batch_size}")
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.confirm_fraction, self.seed = val_fraction, confirm_fraction, seed
        self.shift, self.hflip, self.limit_train = shift, hflip, limit_train
        self._splits: dict[str, TensorDataset] | None = None
        self._train_gen: torch.Generator | None = None
        self._restored: dict[str, torch.Tensor] = {}

    def check_files(self) -> None:
        """Raise DataFileError when the data cannot be there when :meth:`setup` needs it (a
        missing directory, or missing files that will not be downloaded); cheap, reads no data.
        Data modules without files accept everything."""

    @abc.abstractmethod
    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x_train, y_train, x_test, y_test)``: float images in [0, 1] (N, C, H, W) and int
        labels."""

    def source(self) -> str:
        """Where :meth:`load` reads from, for error messages (subclasses name their files)."""
        return type(self).__name__

    def check(self, x: np.ndarray, y: np.ndarray, part: str) -> None:
        """Refuse images or labels the module cannot train on, naming the part and the value.

        Images must be float (N, C, H, W) with the module's ``input_shape`` and finite values in
        [0, 1]; labels integers (N,) in ``0..num_classes - 1``.

        Raises:
            DataFileError: naming :meth:`source`, the part (``train``/``test``) and what is wrong.
        """
        where = f"{self.source()}: {part} split"
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise DataFileError(f"{where}: images of shape {tuple(x.shape[1:])}, expected "
                                f"{self.input_shape} (C, H, W) for {type(self).__name__}")
        if x.dtype.kind != "f":
            raise DataFileError(f"{where}: images of dtype {x.dtype}, expected floats in [0, 1]")
        bad = np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(axis=1))
        if bad.size:
            raise DataFileError(f"{where}: image {int(bad[0])} has NaN or infinite pixels "
                                f"({bad.size} such images)")
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if lo < 0.0 or hi > 1.0:
            raise DataFileError(f"{where}: pixel values in [{lo:.4g}, {hi:.4g}], expected [0, 1]")
        if y.ndim != 1 or len(y) != len(x):
            raise DataFileError(f"{where}: labels of shape {y.shape} for {len(x)} images")
        if y.dtype.kind not in "iu":
            raise DataFileError(f"{where}: labels of dtype {y.dtype}, expected integers")
        out = np.flatnonzero((y < 0) | (y >= self.num_classes))
        if out.size:
            raise DataFileError(f"{where}: label {int(y[out[0]])} of sample {int(out[0])} is "
                                f"outside 0..{self.num_classes - 1} ({out.size} such labels)")

    def setup(self, stage: str | None = None) -> None:
        if self._splits is not None:
            return
        xtr, ytr, xte, yte = self.load()
        self.check(xtr, ytr, "train")
        self.check(xte, yte, "test")
        perm = np.random.default_rng(self.seed).permutation(len(xtr))
        n_val = max(1, int(round(len(xtr) * self.val_fraction)))
        n_confirm = int(round(len(xtr) * self.confirm_fraction))
        val, confirm = perm[:n_val], perm[n_val:n_val + n_confirm]
        train = perm[n_val + n_confirm:]
        if self.limit_train:
            train = train[:self.limit_train]
        x_train = torch.as_tensor(xtr[train], dtype=torch.float32)
        self.mean = x_train.mean(dim=(0, 2, 3)).view(1, -1, 1, 1)
        self.std = x_train.std(dim=(0, 2, 3)).clamp_min(1e-6).view(1, -1, 1, 1)

        def tds(x, y):
            return TensorDataset(torch.as_tensor(x, dtype=torch.float32),
                                 torch.as_tensor(y, dtype=torch.long))
        self._splits = {"train": tds(xtr[train], ytr[train]), "val": tds(xtr[val], ytr[val]),
                        "confirm": tds(xtr[confirm], ytr[confirm]), "test": tds(xte, yte)}
        self._aug_gen = torch.Generator().manual_seed(self.seed + 1)
        if "augment_generator" in self._restored:
            self._aug_gen.set_state(self._restored.pop("augment_generator"))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The states of the shuffling generator of the latest training loader and of the
        augmentation generator (Lightning keeps them in its checkpoints)."""
        state = {}
        if self._train_gen is not None:
            state["train_generator"] = self._train_gen.get_state()
        if self._splits is not None:
            state["augment_generator"] = self._aug_gen.get_state()
        return state

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Continue the generators :meth:`state_dict` saved: the augmentation's at once (or at
        :meth:`setup`), the shuffling one in the next :meth:`train_dataloader`."""
        self._restored = dict(state_dict)
        if self._splits is not None and "augment_generator" in self._restored:
            self._aug_gen.set_state(self._restored.pop("augment_generator"))

    def split(self, name: str) -> TensorDataset:
        """The ``train``, ``val``, ``confirm`` or ``test`` dataset (un-normalised images in
        [0, 1])."""
        if self._splits is None:
            self.setup()
        return self._splits[name]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise images with the training split's per-channel mean and std."""
        return (x - self.mean) / self.std

    def _collate_train(self, batch):
        x, y = default_collate(batch)
        x = random_shift(x, self.shift, self._aug_gen)
        if self.hflip:
            x = random_hflip(x, self._aug_gen)
        return self.normalize(x), y

    def _collate_eval(self, batch):
        x, y = default_collate(batch)
        return self.normalize(x), y

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented training batches; every loader starts its own generator from
        ``seed``, except the first after :meth:`load_state_dict`, which continues the saved one."""
        gen = torch.Generator().manual_seed(self.seed)
        if "train_generator" in self._restored:
            gen.set_state(self._restored.pop("train_generator"))
        self._train_gen = gen
        return DataLoader(self.split("train"), batch_size=self.batch_size, shuffle=True,
                          generator=gen, collate_fn=self._collate_train)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.split("val"), batch_size=self.eval_batch_size,
                          collate_fn=self._collate_eval)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.split("test"), batch_size=self.eval_batch_size,
                          collate_fn=self._collate_eval)
