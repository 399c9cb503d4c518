"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download)."""
from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from agn.data.base import TEST_SPLIT_SEED, ImageDataModule


class DigitsDataModule(ImageDataModule):
    """8x8 digits, pixel values 0..16 scaled to [0, 1]; a fixed 25 % test split.

    The evaluation splits are large by default (449 test images; of the other 1,348 a quarter
    each for validation and confirmation, 337 images, and 674 to train on), so that accuracy
    differences between multiplier assignments span more than a few images.

    Args:
        test_fraction: share of the 1,797 images held out for testing (fixed split).
        val_fraction, confirm_fraction: shares of the rest held out for validation and for
            confirmation (see :class:`~agn.data.base.ImageDataModule`).
        **kwargs: see :class:`~agn.data.base.ImageDataModule`.
    """

    in_channels, input_size, num_classes = 1, 8, 10

    def __init__(self, test_fraction: float = 0.25, val_fraction: float = 0.25,
                 confirm_fraction: float = 0.25, **kwargs) -> None:
        super().__init__(val_fraction=val_fraction, confirm_fraction=confirm_fraction, **kwargs)
        self.test_fraction = test_fraction

    def load(self):
        d = load_digits()
        x = (d.images.astype(np.float32) / 16.0)[:, None]
        y = d.target.astype(np.int64)
        perm = np.random.default_rng(TEST_SPLIT_SEED).permutation(len(x))
        n_test = int(round(len(x) * self.test_fraction))
        test, train = perm[:n_test], perm[n_test:]
        return x[train], y[train], x[test], y[test]
