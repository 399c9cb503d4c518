"""Encode float inputs into a network's uint8 input codes, as the trained model's quantizer does.

The Input node records the float normalisation (per-channel ``mean``/``std``) and the input
quantisation (``scale``, ``zero_point``, ``lo..hi``); :func:`encode_inputs` applies them in float32
arithmetic with round-half-to-even, the operations and order of ``agn``'s data module and input
quantizer, so the codes equal the torch model's bit for bit without importing torch.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from deploy.errors import IRError
from deploy.network import Network

__all__ = ["encode_inputs"]


def encode_inputs(net: Network, x: ArrayLike) -> np.ndarray:
    """uint8 codes ``clip(round(((x - mean) / std) / scale) + zero_point, lo, hi)`` of ``x``.

    Args:
        net: the network; its Input node must record its normalisation (IR schema >= 2).
        x: float images ``(N, C, H, W)`` as the data module loads them (e.g. in [0, 1]); cast
            to float32 first, as the data module does.

    Returns:
        uint8 ``(N, C, H, W)``, ready for :func:`deploy.run` and the firmware.

    Raises:
        IRError: the network does not record its input normalisation (it predates input
            encoding, IR schema 1, or was built without it), or ``x`` has the wrong shape or a
            non-finite value.
    """
    inp = net.input
    if inp.mean is None or inp.std is None:
        raise IRError(f"encode_inputs({net.name!r}): the network's input node {inp.name!r} "
                      f"records no float normalisation (mean/std): the network predates input "
                      f"encoding (IR schema 1) or was built without it; re-export it from its "
                      f"run to encode float inputs")
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise IRError(f"encode_inputs({net.name!r}): x expected real numbers, got dtype "
                      f"{a.dtype}")
    if a.ndim != 4 or a.shape[1:] != inp.shape:
        dims = ", ".join(map(str, inp.shape))
        raise IRError(f"encode_inputs({net.name!r}): x expected shape (N, {dims}), got "
                      f"{a.shape}")
    x32 = a.astype(np.float32)
    if not np.all(np.isfinite(x32)):
        bad = np.argwhere(~np.isfinite(x32))[0]
        raise IRError(f"encode_inputs({net.name!r}): x expected finite values, got "
                      f"{x32[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    mean = np.asarray(inp.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(inp.std, np.float32).reshape(1, -1, 1, 1)
    normalized = (x32 - mean) / std
    q = np.round(normalized / np.float32(inp.scale)) + np.float32(inp.zero_point)
    return np.clip(q, inp.lo, inp.hi).astype(np.uint8)
