"""Synthetic operands and slow Monte Carlo references shared by the errormodels tests."""
from __future__ import annotations

import numpy as np

from errormodels import OperandStats


def scaled_fields(rng: np.random.Generator, n_fields: int, fan_in: int,
                  lo: int = 0, hi: int = 255) -> np.ndarray:
    """Receptive fields (N, n) whose activation scale differs per field (as across neurons)."""
    scales = rng.integers(max(lo, 8), hi + 1, size=n_fields)
    x = rng.integers(lo, scales[:, None] + 1, size=(n_fields, fan_in))
    sparse = rng.random((n_fields, fan_in)) < 0.3          # ReLU zeros
    return np.where(sparse, lo, x).astype(np.int64)


def layer_stats(rng: np.random.Generator, fields: np.ndarray, weights: np.ndarray,
                name: str = "layer") -> OperandStats:
    """OperandStats of synthetic operands (output std is irrelevant to the predictions)."""
    return OperandStats.from_operands(name, weights, fields, multiplications=fields.shape[1] * 10,
                                      out_std=1.0, out_mean=0.0, seed=0)


def mc_iid(err_of, fields: np.ndarray, weights: np.ndarray, trials: int, seed: int):
    """Dot-product error with x drawn from the pooled activations, w from the weights."""
    rng = np.random.default_rng(seed)
    n = fields.shape[1]
    x = rng.choice(fields.ravel(), size=(trials, n))
    w = rng.choice(weights.ravel(), size=(trials, n))
    e = err_of(x, w).sum(axis=1)
    return e.mean(), e.std()


def mc_population(err_of, fields: np.ndarray, weights: np.ndarray, trials: int, seed: int):
    """Pick a field, draw x i.i.d. from that field's values and w from the weights."""
    rng = np.random.default_rng(seed)
    n_f, n = fields.shape
    k = rng.integers(0, n_f, size=trials)
    x = fields[k[:, None], rng.integers(0, n, size=(trials, n))]
    w = rng.choice(weights.ravel(), size=(trials, n))
    e = err_of(x, w).sum(axis=1)
    return e.mean(), e.std()


def mc_fixed_field(err_of, fields: np.ndarray, weights: np.ndarray, trials: int, seed: int):
    """Pick a field, keep its activations, draw only the weights (a neuron with random weights)."""
    rng = np.random.default_rng(seed)
    n_f, n = fields.shape
    x = fields[rng.integers(0, n_f, size=trials)]
    w = rng.choice(weights.ravel(), size=(trials, n))
    e = err_of(x, w).sum(axis=1)
    return e.mean(), e.std()
