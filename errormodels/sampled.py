"""The sampled operands of a layer and the error they accumulate, exactly, under each multiplier.

The histogram formulas of :mod:`errormodels.predict` forget which weight meets which input
position. Keeping the sampled receptive fields themselves, ``x[k, i]`` (N, n), and the layer's
integer weights ``w[c, i]`` (C, n) gives the accumulated error of every (field, channel) pair

    E[k, c] = sum_i e(x[k, i], w[c, i]),

whose mean and std over the pairs (a field of group g meets the channels of group g only) are the
layer's output error mean and std on the sample, with every joint (x, w) dependence kept: the
error model of ``Method.SAMPLE``. Its cost is N * C * n table look-ups per multiplier.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from errormodels.errors import StatsError
from hwlib.domain import INT8, UINT8

__all__ = ["SampledOperands", "sampled_moments"]

_CHUNK = 1 << 22
"""Table look-ups gathered at once, times the multipliers (bounds the temporary memory)."""


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class SampledOperands:
    """The raw operands behind a layer's statistics.

    Attributes:
        fields: uint8 (N, n), the sampled receptive fields' input codes (padding taps hold the
            zero point), in the weights' ``(ci, ky, kx)`` order.
        weights: int8 (C, n), the integer weights, one row per output channel.
        groups: G, the layer's groups; channel c belongs to group ``c // (C // G)``.
        field_groups: int64 (N,), the group of each field (all 0 when ``groups == 1``).
    """

    fields: np.ndarray
    weights: np.ndarray
    groups: int = 1
    field_groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        f, w = np.asarray(self.fields), np.asarray(self.weights)
        if f.ndim != 2 or w.ndim != 2 or f.shape[1] != w.shape[1] or 0 in f.shape + w.shape:
            raise StatsError(f"SampledOperands: expected fields (N, n) and weights (C, n) with "
                             f"the same n >= 1, got {f.shape} and {w.shape}")
        f = UINT8.check(f, "fields", "SampledOperands").astype(np.uint8)
        w = INT8.check(w, "weights", "SampledOperands").astype(np.int8)
        g = int(self.groups)
        if g < 1 or w.shape[0] % g:
            raise StatsError(f"SampledOperands: groups={self.groups} must be >= 1 and divide the "
                             f"{w.shape[0]} output channels")
        fg = (np.zeros(f.shape[0], np.int64) if self.field_groups is None
              else np.asarray(self.field_groups).astype(np.int64))
        if fg.shape != (f.shape[0],) or fg.min() < 0 or fg.max() >= g:
            raise StatsError(f"SampledOperands: field_groups must be ({f.shape[0]},) values in "
                             f"[0, {g}), got shape {fg.shape}")
        for key, val in (("fields", f), ("weights", w), ("field_groups", fg)):
            val.setflags(write=False)
            object.__setattr__(self, key, val)
        object.__setattr__(self, "groups", g)

    @property
    def group_of_field(self) -> np.ndarray:
        """int64 (N,): each field's group (``field_groups`` as validated)."""
        return np.asarray(self.field_groups, np.int64)


def sampled_moments(operands: SampledOperands, errors: np.ndarray,
                    offsets: np.ndarray | None = None,
                    channels_per_field: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of ``E[k, c] - offsets[m, c]`` over every (field, channel of the field's
    group) pair, or over ``channels_per_field`` channels per field.

    Args:
        operands: the layer's sampled fields and weights.
        errors: integer (M, 256, 256) error tables indexed ``[m, x - 0, w + 128]`` (an
            :class:`~errormodels.ErrorCatalog`'s ``errors``).
        offsets: float (M, C) subtracted from each channel's error (e.g. the bias corrections
            of error-mean compensation), or None.
        channels_per_field: None for every channel of the field's group; ``p`` for ``p`` of
            them, cycling: the ``j``-th field of a group meets its channels ``(j * p + i) mod
            C_g``, ``i < p``, so every channel meets as many fields (up to one) and the cost
            drops by ``C_g / p`` (many fields with few channels each estimate the spread as
            well as all pairs when fields, not channels, dominate it).

    Returns:
        ``(mean, std)``, each float64 (M,).
    """
    e = np.asarray(errors)
    if e.ndim != 3 or e.shape[1:] != (UINT8.size, INT8.size):
        raise StatsError(f"sampled_moments: expected error tables (M, {UINT8.size}, "
                         f"{INT8.size}), got {e.shape}")
    m = e.shape[0]
    rows_of = np.ascontiguousarray(e.reshape(m, -1).T)                 # (256 * 256, M)
    x = operands.fields.astype(np.int64) * INT8.size                   # (N, n) row offsets
    w = operands.weights.astype(np.int64) - INT8.lo                    # (C, n) column indices
    per_group = w.shape[0] // operands.groups
    off = None if offsets is None else np.asarray(offsets, np.float64)
    if off is not None and off.shape != (m, w.shape[0]):
        raise StatsError(f"sampled_moments: offsets must be (M, C) = {(m, w.shape[0])}, got "
                         f"{off.shape}")
    if channels_per_field is not None and channels_per_field < 1:
        raise StatsError(f"sampled_moments: channels_per_field must be >= 1 or None, got "
                         f"{channels_per_field}")
    s1, s2, count = np.zeros(m), np.zeros(m), 0
    for xk, ch in _pair_chunks(x, operands.group_of_field, operands.groups, per_group,
                               channels_per_field, max(1, _CHUNK // (x.shape[1] * m))):
        acc = rows_of[xk[:, None, :] + w[ch]].sum(axis=2, dtype=np.int64).astype(np.float64)
        if off is not None:                                            # acc: (Nk, Cc, M)
            acc -= off.T[ch]
        s1 += acc.sum(axis=(0, 1))
        s2 += (acc * acc).sum(axis=(0, 1))
        count += acc.shape[0] * acc.shape[1]
    if count == 0:
        raise StatsError("sampled_moments: no field meets a channel of its group")
    mean = s1 / count
    return mean, np.sqrt(np.maximum(s2 / count - mean * mean, 0.0))


def _pair_chunks(x: np.ndarray, field_groups: np.ndarray, groups: int, per_group: int,
                 channels_per_field: int | None, budget: int
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(fields (Nk, n), channels (Nk or 1, Cc))`` chunks of the (field, channel) pairs, each
    of about ``budget`` (field, channel) pairs or fewer."""
    for g in range(groups):
        xg = x[field_groups == g]
        c_lo = g * per_group
        if channels_per_field is not None and channels_per_field < per_group:
            p = channels_per_field
            step = max(1, budget // p)
            for k0 in range(0, len(xg), step):
                xk = xg[k0:k0 + step]
                yield xk, c_lo + ((k0 + np.arange(len(xk)))[:, None] * p + np.arange(p)) \
                    % per_group
            continue
        for k0 in range(0, len(xg), budget):
            xk = xg[k0:k0 + budget]
            step = max(1, budget // len(xk))
            for c0 in range(c_lo, c_lo + per_group, step):
                yield xk, np.arange(c0, min(c0 + step, c_lo + per_group))[None, :]
