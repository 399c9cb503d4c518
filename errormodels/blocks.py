"""Kernel granularity: predicted error per (output channel, input-channel group) block and one
multiplier per (output group, input group) block.

A conv output element sums ``n = K * T`` products (K input channels of T = kh * kw taps each,
the weight's ``(ci, ky, kx)`` order). Split the K input channels into G groups of ``in_group``:
block ``(c, g)`` adds ``n_g = in_group * T`` of those products, with its own weight distribution
``q_cg`` (the kernels of filter c over the group's input channels) and, per sampled receptive
field k, its own activation distribution ``p_kg`` (the field's values on those input channels).
Under the fixed-field model (weights drawn, the field held fixed) a block contributes, for
multiplier m,

- a within-field variance ``V_cgm = n_g * mean_k sum_x p_kg(x) (E2_cgm(x) - A_cgm(x)^2)``, and
- a per-field mean ``mu_kcgm = n_g * sum_x p_kg(x) A_cgm(x)``.

A channel whose blocks run multipliers ``m_g`` has error mean ``sum_g mean_k mu_kcg(m_g)`` and
variance ``sum_g V_cg(m_g) + Var_k sum_g mu_kcg(m_g)``: the within-field variances add (the
products of different blocks are independent draws), the per-field means add before the
variance over fields is taken (every block sees the same field, so their mean errors move
together). With one multiplier for all blocks and one group (G = 1) this is the per-channel
fixed-field formula of :mod:`errormodels.channels`.

The operands are the sampled fields and integer weights themselves (:class:`BlockOperands`,
``block_operands.npz`` next to ``operand_stats.npz``), so any ``in_group`` dividing K is predicted
from one file.
"""
from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from errormodels.catalog import ErrorCatalog
from errormodels.errors import StatsError
from errormodels.match import Metric, tolerances
from errormodels.predict import error_moments
from errormodels.sigmas import LayerSigma, pair_with_stats
from errormodels.stats import ACT_DOMAIN, WEIGHT_DOMAIN, OperandStats, histogram
from hwlib.assignment import Assignment, LayerAssignment
from hwlib.blocks import Block
from hwlib.fileio import atomic_path

BLOCKS_FILE = "block_operands.npz"
_FORMAT_VERSION = 1
_ROWS = 32
"""(channel, group) rows whose error moments are held at once (memory: rows x M x 256 floats)."""


@dataclass(frozen=True, eq=False)  # holds arrays
class BlockOperands:
    """The integer operands one layer's block error model needs.

    Attributes:
        name: the layer's name (as in its :class:`~errormodels.OperandStats`).
        weights: int64 (C, K, T), the integer weights (``T = kh * kw``; 1 for a linear layer).
        fields: int64 (N, K, T), sampled receptive fields in the same ``(ci, tap)`` order
            (padded taps hold the zero point).
    """

    name: str
    weights: np.ndarray
    fields: np.ndarray

    def __post_init__(self) -> None:
        w, f = np.asarray(self.weights), np.asarray(self.fields)
        where = f"BlockOperands {self.name!r}"
        if w.ndim != 3 or f.ndim != 3 or w.shape[1:] != f.shape[1:] or not f.shape[0]:
            raise StatsError(f"{where}: expected weights (C, K, T) and fields (N >= 1, K, T) "
                             f"with the same K and T, got {w.shape} and {f.shape}")
        WEIGHT_DOMAIN.check(w, "weights", where)
        ACT_DOMAIN.check(f, "fields", where)
        for key, val in (("weights", w), ("fields", f)):
            val = val.astype(np.int64)
            val.setflags(write=False)
            object.__setattr__(self, key, val)

    @property
    def in_channels(self) -> int:
        """K, the input channels each filter reads."""
        return int(self.weights.shape[1])

    @classmethod
    def from_operands(cls, name: str, weights: np.ndarray, fields: np.ndarray) -> BlockOperands:
        """From integer weights ``(C, K, ...)`` (or ``(C, K)``) and fields ``(N, fan_in)`` in the
        weight's flattened order."""
        w = np.asarray(weights)
        w = w.reshape(w.shape[0], w.shape[1], -1)
        return cls(name, w, np.asarray(fields).reshape(-1, *w.shape[1:]))


def save_block_operands(path: str | os.PathLike[str], operands: Sequence[BlockOperands]) -> Path:
    """Write every layer's block operands to one ``.npz`` atomically; return the path."""
    ops = list(operands)
    arrays: dict[str, Any] = {"format_version": np.array(_FORMAT_VERSION),
                              "names": np.array([o.name for o in ops], dtype=str)}
    for i, o in enumerate(ops):
        arrays[f"weights_{i}"] = o.weights.astype(np.int8)
        arrays[f"fields_{i}"] = o.fields.astype(np.uint8)
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
    return Path(path)


def load_block_operands(path: str | os.PathLike[str]) -> dict[str, BlockOperands]:
    """Layer name -> its :class:`BlockOperands`, as :func:`save_block_operands` wrote them.

    Raises:
        StatsError: no such file, not an npz, or arrays missing.
    """
    p = Path(path)
    p = p / BLOCKS_FILE if p.is_dir() else p
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise StatsError(f"block operands: no file {p} (collect the operand statistics again: "
                         f"the stats stage writes it)") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise StatsError(f"block operands {p}: not a readable .npz file ({exc})") from None
    if int(data.get("format_version", -1)) != _FORMAT_VERSION or "names" not in data:
        raise StatsError(f"block operands {p}: expected format_version {_FORMAT_VERSION} and "
                         f"layer names")
    out = {}
    for i, name in enumerate(data["names"]):
        if f"weights_{i}" not in data or f"fields_{i}" not in data:
            raise StatsError(f"block operands {p}: layer {str(name)!r} lacks its arrays")
        out[str(name)] = BlockOperands(str(name), data[f"weights_{i}"], data[f"fields_{i}"])
    return out


@dataclass(frozen=True, eq=False)  # holds arrays
class BlockPrediction:
    """Predicted error contributions of one layer's (channel, input group) blocks.

    Attributes:
        within: float64 (C, G, M), ``V_cgm``, the within-field variance of each block.
        field_means: float64 (N, C, G, M), ``mu_kcgm``, each block's mean error per field.
        feasible: bool (M,), the layer's operands inside each multiplier's domains.
        in_group: input channels per group.
    """

    within: np.ndarray
    field_means: np.ndarray
    feasible: np.ndarray
    in_group: int

    @property
    def block_std(self) -> np.ndarray:
        """(C, G, M): each block's own error std ``sqrt(V + Var_k mu)`` (inf where infeasible)."""
        std = np.sqrt(self.within + self.field_means.var(axis=0))
        return np.where(self.feasible, std, np.inf)

    def channel_error(self, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` per channel, float64 (C,), with block ``(c, g)`` at multiplier
        ``choice[c, g]`` (int (C, G) catalog indices)."""
        c, g = np.indices(choice.shape)
        fm = self.field_means[:, c, g, choice].sum(axis=-1)        # (N, C)
        var = self.within[c, g, choice].sum(axis=-1) + fm.var(axis=0)
        return fm.mean(axis=0), np.sqrt(var)


def layer_in_group(in_group: int, in_channels: int) -> int:
    """A layer's input channels per block: ``in_group``, capped at its ``in_channels`` (a first
    conv on one grey channel has blocks of 1 whatever the network's input group)."""
    return min(int(in_group), int(in_channels))


def _groups_of(ops: BlockOperands, in_group: int) -> int:
    if in_group < 1 or ops.in_channels % in_group:
        raise StatsError(f"block model: input-channel group size {in_group} does not divide the "
                         f"{ops.in_channels} input channels of layer {ops.name!r}")
    return ops.in_channels // in_group


def predict_blocks(ops: BlockOperands, catalog: ErrorCatalog, in_group: int) -> BlockPrediction:
    """Per-(channel, input group) error contributions of one layer under every multiplier.

    ``in_group`` is capped at the layer's input channels (:func:`layer_in_group`).

    Raises:
        StatsError: ``in_group`` does not divide the layer's input channels.
    """
    in_group = layer_in_group(in_group, ops.in_channels)
    groups = _groups_of(ops, in_group)
    c_out, _, taps = ops.weights.shape
    n_g = in_group * taps
    w = ops.weights.reshape(c_out, groups, n_g)
    f = ops.fields.reshape(ops.fields.shape[0], groups, n_g)
    q = histogram(w, WEIGHT_DOMAIN, axis=-1) / float(n_g)          # (C, G, W)
    p = histogram(f, ACT_DOMAIN, axis=-1) / float(n_g)             # (N, G, X)
    m = len(catalog)
    within = np.empty((c_out, groups, m))
    means = np.empty((p.shape[0], c_out, groups, m))
    for g in range(groups):
        pbar = p[:, g].mean(axis=0)
        for lo in range(0, c_out, _ROWS):
            a, e2 = error_moments(catalog.float_errors, q[lo:lo + _ROWS, g],
                                  catalog.squared_errors)          # (r, M, X)
            within[lo:lo + _ROWS, g] = n_g * np.maximum((e2 - a * a) @ pbar, 0.0)
            means[:, lo:lo + _ROWS, g] = n_g * np.einsum("nx,rmx->nrm", p[:, g], a)
    used_x = np.bincount(ACT_DOMAIN.index(ops.fields).ravel(), minlength=ACT_DOMAIN.size) > 0
    used_w = np.bincount(WEIGHT_DOMAIN.index(ops.weights).ravel(),
                         minlength=WEIGHT_DOMAIN.size) > 0
    feasible = np.asarray(~((~catalog.x_support & used_x).any(axis=1)
                            | (~catalog.w_support & used_w).any(axis=1)))
    return BlockPrediction(within=within, field_means=means, feasible=feasible,
                           in_group=in_group)


def _least_sensitive_first(worst: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """Rows of ``worst`` (B, M) least sensitive first: by the mean over feasible multipliers with
    a positive mean error of each row's error relative to that mean (ties by row)."""
    scale = worst.mean(axis=0)
    cols = feasible & np.isfinite(scale) & (scale > 0)
    score = (worst[:, cols] / scale[cols]).mean(axis=1) if cols.any() else np.zeros(len(worst))
    return np.lexsort((np.arange(len(score)), score))


def block_worst(pred: BlockPrediction, group: int) -> np.ndarray:
    """(O, G, M): per (output group of ``group`` channels, input group) block, its worst
    channel's own error std."""
    std = pred.block_std
    c_out = std.shape[0]
    if group < 1 or c_out % group:
        raise StatsError(f"block model: group size {group} does not divide the {c_out} output "
                         f"channels")
    return std.reshape(c_out // group, group, *std.shape[1:]).max(axis=1)


def kernel_sensitivity_order(ops: BlockOperands, catalog: ErrorCatalog, group: int,
                             in_group: int) -> tuple[int, ...]:
    """The layer's (output group, input group) blocks, least sensitive first, as flat indices
    ``o * G + g`` (G input groups per filter)."""
    worst = block_worst(predict_blocks(ops, catalog, in_group), group)
    flat = worst.reshape(-1, worst.shape[-1])
    return tuple(int(i) for i in _least_sensitive_first(flat, np.ones(len(catalog), bool)))


def _fit_channel_group(pred: BlockPrediction, rows: slice, worst: np.ndarray, tol: float,
                       metric: Metric, power: np.ndarray, start: int) -> np.ndarray:
    """Input-group multipliers (G,) of one output group: least sensitive block first, each the
    cheapest multiplier keeping every channel of the group within ``tol`` (the others as they
    are, the unvisited ones at ``start``)."""
    within = pred.within[rows]                                     # (K, G, M)
    fm = pred.field_means[:, rows]                                 # (N, K, G, M)
    groups = within.shape[1]
    choice = np.full(groups, start)
    g_idx = np.arange(groups)
    cur_w = within[:, g_idx, choice].sum(axis=1)                   # (K,)
    cur_f = fm[:, :, g_idx, choice].sum(axis=2)                    # (N, K)
    for g in _least_sensitive_first(worst, pred.feasible):
        w_m = cur_w[:, None] - within[:, g, choice[g]][:, None] + within[:, g]     # (K, M)
        f_m = cur_f[:, :, None] - fm[:, :, g, choice[g]][:, :, None] + fm[:, :, g]  # (N, K, M)
        err2 = w_m + f_m.var(axis=0)
        if metric is Metric.RMS:
            err2 = err2 + f_m.mean(axis=0) ** 2
        ok = pred.feasible & (np.sqrt(err2) <= tol).all(axis=0)
        ok[choice[g]] = True                                       # staying is always allowed
        worst_err = err2.max(axis=0)
        best = np.lexsort((worst_err, np.where(ok, power, np.inf)))[0]
        cur_w, cur_f = w_m[:, best], f_m[:, :, best]
        choice[g] = best
    return choice


def match_kernels(sigmas: Sequence[LayerSigma], stats: Sequence[OperandStats],
                  operands: dict[str, BlockOperands], catalog: ErrorCatalog,
                  metric: Metric | str = Metric.STD, group: int = 1,
                  in_group: int = 1) -> Assignment:
    """One multiplier per (``group`` output channels, ``in_group`` input channels) block of
    every layer (``sigmas`` order; ``in_group`` capped at a layer's input channels).

    Rule: a channel tolerates the layer's tolerance ``|sigma| * std(y)`` (the noise stage adds
    noise of that std to every output); it is shared out over the channel's input blocks
    greedily. Blocks start at the exact multiplier; visited least sensitive first (by their own
    predicted error relative to the layer's blocks), each takes the cheapest multiplier that
    keeps every channel of its output group within tolerance given the blocks already set.
    Tolerant blocks thus spend the channel's error budget first, where a cheap multiplier costs
    the least error; with one input group this is filter matching's cheapest rule.

    Raises:
        StatsError: a group size does not divide a layer's channels, or a layer has no block
            operands.
    """
    metric = Metric(metric)
    pairs = pair_with_stats(sigmas, stats)
    tol = tolerances(np.array([sg.sigma for sg, _ in pairs]),
                     np.array([st.out_std for _, st in pairs]))
    power = np.asarray(catalog.relative_power)
    layers = []
    for (sg, st), t in zip(pairs, tol):
        if st.name not in operands:
            raise StatsError(f"match_kernels: no block operands for layer {st.name!r}")
        pred = predict_blocks(operands[st.name], catalog, in_group)
        worst = block_worst(pred, group)                           # (O, G, M)
        choice = np.stack([_fit_channel_group(pred, slice(o * group, (o + 1) * group), worst[o],
                                              float(t), metric, power, catalog.exact_index)
                           for o in range(worst.shape[0])])       # (O, G)
        per_channel = np.repeat(choice, group, axis=0)
        mean, std = pred.channel_error(per_channel)
        m = pred.in_group
        blocks = tuple(Block(out=(o * group, (o + 1) * group), inp=(g * m, (g + 1) * m),
                             multiplier=catalog.specs[int(choice[o, g])])
                       for o in range(choice.shape[0]) for g in range(choice.shape[1]))
        layers.append(LayerAssignment(
            name=sg.name, groups=blocks, sigma=float(sg.sigma), tolerance=float(t),
            predicted_std=float(np.sqrt(np.mean(std ** 2))), predicted_mean=float(mean.mean()),
            relative_power=float(power[choice].mean()), multiplications=st.multiplications))
    specs = [x.spec for x in layers]
    return Assignment(catalog=catalog.family, rule="cheapest", metric=metric.value,
                      energy=catalog.catalog.energy(specs, [st.multiplications for _, st in pairs]),
                      power_source=catalog.catalog.power_source_of(specs), layers=tuple(layers),
                      details={"granularity": "kernel", "group": group, "in_group": in_group})
