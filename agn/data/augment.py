"""Tensor augmentations for the training split (no torchvision): random shifts and flips."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """Shift each image of a batch (N, C, H, W) by up to ``max_shift`` pixels, filling with 0.

    Implemented as pad-then-crop with one random offset pair per image (CIFAR's pad-4 crop).
    """
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    off = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    rows = (off[:, 0, None] + torch.arange(h))[:, None, :, None]
    cols = (off[:, 1, None] + torch.arange(w))[:, None, None, :]
    idx_n = torch.arange(n)[:, None, None, None]
    idx_c = torch.arange(x.shape[1])[None, :, None, None]
    return padded[idx_n, idx_c, rows, cols]


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image of a batch (N, C, H, W) left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)
