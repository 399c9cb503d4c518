"""Fully connected layer with any multiplier: products by table gather, int64 accumulators."""
from __future__ import annotations

import numpy as np

from hwlib import Multiplier


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, mul: Multiplier) -> np.ndarray:
    """int64 accumulators ``bias[o] + sum_i m(x[:, i], weight[o, i])`` (N, Cout).

    Args:
        x: uint8 activations (N, F) inside ``mul``'s activation domain.
        weight: int8 (Cout, F).
        bias: int32 (Cout,).
        mul: the layer's multiplier.
    """
    xi = np.asarray(x, np.int64) - mul.x_domain.lo
    wi = np.asarray(weight, np.int64) - mul.w_domain.lo
    table = mul.table()
    acc = np.zeros((xi.shape[0], wi.shape[0]), np.int64)
    for i in range(xi.shape[1]):
        acc += table[xi[:, i, None], wi[None, :, i]]
    return acc + np.asarray(bias, np.int64)[None, :]
