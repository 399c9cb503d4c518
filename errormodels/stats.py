"""Operand statistics of an approximable layer, histogram helpers and ``operand_stats.npz`` I/O."""
from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from errormodels.errors import StatsError
from errormodels.sampled import SampledOperands
from hwlib.domain import INT8, UINT8, Domain
from hwlib.fileio import atomic_path

ACT_DOMAIN: Domain = UINT8
"""Domain of the activation histograms (uint8 0..255); value ``v`` counts at index ``v - 0``."""
WEIGHT_DOMAIN: Domain = INT8
"""Domain of the weight histograms (int8 -128..127); value ``v`` counts at index ``v + 128``."""
STATS_FILE = "operand_stats.npz"
_FORMAT_VERSION = 1


def histogram(values: np.ndarray, domain: Domain, axis: int | None = None) -> np.ndarray:
    """Counts of each domain value, indexed by ``value - domain.lo``.

    Args:
        values: integer array; every value must lie in ``domain``.
        domain: the histogram's domain.
        axis: None to count over the whole array (result ``(domain.size,)``); otherwise the
            axis that holds the samples of one histogram, e.g. ``axis=-1`` on ``(N, n)`` gives
            ``(N, domain.size)``.

    Returns:
        int64 counts.
    """
    idx = domain.index(domain.check(values, "values", "histogram"))
    if axis is None:
        return np.bincount(idx.ravel(), minlength=domain.size).astype(np.int64)
    rows = np.moveaxis(idx, axis, -1)
    lead = rows.shape[:-1]
    rows = rows.reshape(-1, rows.shape[-1])
    offs = rows + domain.size * np.arange(rows.shape[0])[:, None]
    counts = np.bincount(offs.ravel(), minlength=domain.size * rows.shape[0])
    return counts.reshape(*lead, domain.size).astype(np.int64)


def align(hist: np.ndarray, src: Domain, dst: Domain, *, strict: bool = True) -> np.ndarray:
    """Re-index histograms over ``src`` onto ``dst`` so that value ``v`` sits at ``v - dst.lo``.

    Args:
        hist: array (..., src.size).
        src: domain the last axis of ``hist`` is indexed by.
        dst: target domain (e.g. a multiplier's ``x_domain``).
        strict: raise when ``hist`` has mass outside ``dst`` (else that mass is dropped).

    Returns:
        array (..., dst.size) of the same dtype; values of ``dst`` outside ``src`` get 0.

    Raises:
        StatsError: when ``strict`` and ``hist`` has mass on a value outside ``dst``.
    """
    h = np.asarray(hist)
    if h.shape[-1] != src.size:
        raise StatsError(f"align: expected a last axis of {src.size} ({src.name}), got {h.shape}")
    lo, hi = max(src.lo, dst.lo), min(src.hi, dst.hi)
    outside = np.ones(src.size, bool)
    if lo <= hi:
        outside[lo - src.lo:hi - src.lo + 1] = False
    mass = np.any(h[..., outside] != 0, axis=tuple(range(h.ndim - 1)))
    if strict and np.any(mass):
        bad = int(src.values()[outside][np.flatnonzero(mass)[0]])
        raise StatsError(f"align: histogram has counts at value {bad}, outside the target domain "
                         f"{dst.name} [{dst.lo}, {dst.hi}]")
    out = np.zeros(h.shape[:-1] + (dst.size,), dtype=h.dtype)
    if lo <= hi:
        out[..., lo - dst.lo:hi - dst.lo + 1] = h[..., lo - src.lo:hi - src.lo + 1]
    return out


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class OperandStats:
    """What the error model needs to know about one approximable layer's operands.

    Attributes:
        name: the layer's module name in the model (e.g. ``"features.0"``).
        weight_hist: int64 (256,), counts of the layer's integer weights over ``WEIGHT_DOMAIN``
            (index ``w + 128``).
        field_hists: int64 (N, 256), one activation histogram over ``ACT_DOMAIN`` (index ``x``)
            per sampled receptive field, each summing to ``fan_in`` (padded taps count as the
            zero point).
        fan_in: multiplications per output element (``Cin / groups * kh * kw`` or ``in_features``).
        multiplications: multiplications per input sample (output elements per sample * fan_in).
        out_std: std of the exact integer layer output ``sum (x - zp) * w`` (before the bias).
        out_mean: mean of that output.
        seed: seed of the sampling that produced the fields.
        zero_point: integer zero point of the layer's input (the padding value).
        channel_hists: int64 (C, 256) or None, the weight histogram of each output channel
            (rows sum to ``fan_in`` and add up to ``weight_hist``); needed by the ``channel``
            formula.
        operands: the sampled fields and the integer weights themselves, or None; needed by
            the ``sample`` formula (the fields' rows must be the ``field_hists`` rows and the
            weights' rows the ``channel_hists`` rows).
    """

    name: str
    weight_hist: np.ndarray
    field_hists: np.ndarray
    fan_in: int
    multiplications: int
    out_std: float
    out_mean: float
    seed: int
    zero_point: int = 0
    channel_hists: np.ndarray | None = None
    operands: SampledOperands | None = None

    def __post_init__(self) -> None:
        where = f"OperandStats {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise StatsError(f"OperandStats.name: expected a non-empty string, got {self.name!r}")
        wh, fh = np.asarray(self.weight_hist), np.asarray(self.field_hists)
        if wh.shape != (WEIGHT_DOMAIN.size,) or wh.dtype.kind not in "iu":
            raise StatsError(f"{where}: weight_hist must be integer counts of shape "
                             f"({WEIGHT_DOMAIN.size},), got {wh.dtype} {wh.shape}")
        if (fh.ndim != 2 or fh.shape[0] < 1 or fh.shape[1] != ACT_DOMAIN.size
                or fh.dtype.kind not in "iu"):
            raise StatsError(f"{where}: field_hists must be integer counts of shape "
                             f"(N >= 1, {ACT_DOMAIN.size}), got {fh.dtype} {fh.shape}")
        if wh.min() < 0 or fh.min() < 0 or wh.sum() == 0:
            raise StatsError(f"{where}: histograms must be non-negative with at least one weight")
        if int(self.fan_in) < 1:
            raise StatsError(f"{where}: fan_in must be >= 1, got {self.fan_in}")
        sums = fh.sum(axis=1)
        if np.any(sums != int(self.fan_in)):
            k = int(np.flatnonzero(sums != int(self.fan_in))[0])
            raise StatsError(f"{where}: field {k} holds {int(sums[k])} activations, expected "
                             f"fan_in={self.fan_in}")
        if int(self.multiplications) < int(self.fan_in):
            raise StatsError(f"{where}: multiplications={self.multiplications} is below "
                             f"fan_in={self.fan_in}")
        if not (np.isfinite(self.out_std) and self.out_std >= 0 and np.isfinite(self.out_mean)):
            raise StatsError(f"{where}: out_std must be finite and >= 0 and out_mean finite, got "
                             f"out_std={self.out_std}, out_mean={self.out_mean}")
        if not ACT_DOMAIN.lo <= int(self.zero_point) <= ACT_DOMAIN.hi:
            raise StatsError(f"{where}: zero_point {self.zero_point} outside {ACT_DOMAIN.name}")
        wh, fh = wh.astype(np.int64), fh.astype(np.int64)
        wh.setflags(write=False)
        fh.setflags(write=False)
        if self.channel_hists is not None:
            ch = np.asarray(self.channel_hists)
            if (ch.ndim != 2 or ch.shape[1] != WEIGHT_DOMAIN.size or ch.dtype.kind not in "iu"
                    or np.any(ch.sum(axis=1) != int(self.fan_in))
                    or np.any(ch.sum(axis=0) != wh)):
                raise StatsError(f"{where}: channel_hists must be integer counts (C, "
                                 f"{WEIGHT_DOMAIN.size}) with rows summing to fan_in="
                                 f"{self.fan_in} and columns to weight_hist; got {ch.dtype} "
                                 f"{ch.shape}")
            ch = ch.astype(np.int64)
            ch.setflags(write=False)
            object.__setattr__(self, "channel_hists", ch)
        if self.operands is not None:
            self._check_operands(where, fh)
        for key, val in (("weight_hist", wh), ("field_hists", fh), ("fan_in", int(self.fan_in)),
                         ("multiplications", int(self.multiplications)),
                         ("out_std", float(self.out_std)), ("out_mean", float(self.out_mean)),
                         ("seed", int(self.seed)), ("zero_point", int(self.zero_point))):
            object.__setattr__(self, key, val)

    def _check_operands(self, where: str, field_hists: np.ndarray) -> None:
        ops = self.operands
        if not isinstance(ops, SampledOperands):
            raise StatsError(f"{where}: operands must be SampledOperands or None, got "
                             f"{type(ops).__name__}")
        if not np.array_equal(histogram(ops.fields, ACT_DOMAIN, axis=-1), field_hists):
            raise StatsError(f"{where}: operands.fields {ops.fields.shape} are not the fields "
                             f"field_hists counts")
        if self.channel_hists is None or not np.array_equal(
                histogram(ops.weights, WEIGHT_DOMAIN, axis=-1), self.channel_hists):
            raise StatsError(f"{where}: operands.weights {ops.weights.shape} are not the "
                             f"weights channel_hists counts")

    @property
    def n_fields(self) -> int:
        """Number N of sampled receptive fields."""
        return int(self.field_hists.shape[0])

    def weight_pmf(self) -> np.ndarray:
        """Weight distribution q, float64 (256,) over ``WEIGHT_DOMAIN``."""
        return self.weight_hist / self.weight_hist.sum()

    def field_pmfs(self) -> np.ndarray:
        """Per-field activation distributions p_k, float64 (N, 256) over ``ACT_DOMAIN``."""
        return self.field_hists / float(self.fan_in)

    def channel_pmfs(self) -> np.ndarray:
        """Per-output-channel weight distributions q_c, float64 (C, 256).

        Raises:
            StatsError: the record holds no per-channel histograms.
        """
        if self.channel_hists is None:
            raise StatsError(f"OperandStats {self.name!r}: no per-channel weight histograms "
                             f"(collect the statistics again with weights shaped (C, ...))")
        return self.channel_hists / float(self.fan_in)

    @classmethod
    def from_operands(cls, name: str, weights: np.ndarray, fields: np.ndarray, *,
                      multiplications: int, out_std: float, out_mean: float, seed: int,
                      zero_point: int = 0, groups: int = 1,
                      field_groups: np.ndarray | None = None) -> OperandStats:
        """Build the record from integer weights and sampled fields ``(N, fan_in)``.

        Weights shaped ``(C, ...)`` with ``fan_in`` values per output channel also give the
        per-channel histograms and keep the operands themselves (for ``Method.SAMPLE``; a
        layer of ``groups`` groups names each field's group in ``field_groups``); any other
        shape gives the layer histogram only.
        """
        f = np.asarray(fields)
        if f.ndim != 2:
            raise StatsError(f"OperandStats {name!r}: fields must be (N, fan_in), got {f.shape}")
        w = np.asarray(weights)
        per_channel = w.ndim >= 2 and w[0].size == f.shape[1]
        ch = ops = None
        if per_channel:
            w2 = w.reshape(w.shape[0], -1)
            ch = histogram(w2, WEIGHT_DOMAIN, axis=-1)
            ops = SampledOperands(f, w2, groups, field_groups)
        return cls(name, histogram(w, WEIGHT_DOMAIN), histogram(f, ACT_DOMAIN, axis=-1),
                   fan_in=f.shape[1], multiplications=multiplications, out_std=out_std,
                   out_mean=out_mean, seed=seed, zero_point=zero_point, channel_hists=ch,
                   operands=ops)


_SCALARS = ("fan_in", "multiplications", "out_std", "out_mean", "seed", "zero_point")


def save_stats(path: str | os.PathLike[str], stats: Sequence[OperandStats]) -> Path:
    """Write all layers' statistics to one ``.npz`` file atomically; return the path."""
    stats = list(stats)
    if not stats or not all(isinstance(s, OperandStats) for s in stats):
        raise StatsError("save_stats: expected a non-empty sequence of OperandStats")
    names = [s.name for s in stats]
    if len(set(names)) != len(names):
        raise StatsError(f"save_stats: duplicate layer names in {names}")
    arrays: dict[str, Any] = {  # Any: np.savez's stub would match a value to allow_pickle
        "format_version": np.array(_FORMAT_VERSION),
        "names": np.array(names, dtype=str),
        "weight_hist": np.stack([s.weight_hist for s in stats]),
        "field_hists": np.concatenate([s.field_hists for s in stats]),
        "n_fields": np.array([s.n_fields for s in stats], np.int64),
    }
    for key in _SCALARS:
        dtype = np.float64 if key.startswith("out_") else np.int64
        arrays[key] = np.array([getattr(s, key) for s in stats], dtype)
    chans = [s.channel_hists for s in stats]
    arrays["n_channels"] = np.array([0 if c is None else len(c) for c in chans], np.int64)
    arrays["channel_hists"] = np.concatenate(
        [np.zeros((0, WEIGHT_DOMAIN.size), np.int64)] + [c for c in chans if c is not None])
    for i, s in enumerate(stats):
        if s.operands is not None:
            arrays[f"fields_{i}"] = s.operands.fields
            arrays[f"weights_{i}"] = s.operands.weights
            arrays[f"field_groups_{i}"] = s.operands.field_groups
            arrays[f"groups_{i}"] = np.array(s.operands.groups, np.int64)
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
    return Path(path)


def load_stats(path: str | os.PathLike[str]) -> list[OperandStats]:
    """Read the statistics :func:`save_stats` wrote, in layer order.

    Raises:
        StatsError: the file is missing, not an npz, lacks a field or holds inconsistent arrays.
    """
    p = Path(path)
    if p.is_dir():
        p = p / STATS_FILE
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise StatsError(f"operand statistics: no file {p}") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise StatsError(f"operand statistics {p}: not a readable .npz file ({exc})") from None
    need = ("format_version", "names", "weight_hist", "field_hists", "n_fields", *_SCALARS)
    missing = [k for k in need if k not in data]
    if missing:
        raise StatsError(f"operand statistics {p}: missing arrays {missing}")
    if int(data["format_version"]) != _FORMAT_VERSION:
        raise StatsError(f"operand statistics {p}: format_version {int(data['format_version'])}, "
                         f"expected {_FORMAT_VERSION}")
    names, counts = data["names"], data["n_fields"]
    n = len(names)
    if (data["weight_hist"].shape[:1] != (n,) or counts.shape != (n,)
            or any(data[k].shape != (n,) for k in _SCALARS)
            or data["field_hists"].ndim != 2 or counts.sum() != data["field_hists"].shape[0]):
        raise StatsError(f"operand statistics {p}: arrays disagree on the number of layers ({n}) "
                         f"or fields ({int(counts.sum())})")
    n_ch = data.get("n_channels", np.zeros(n, np.int64))
    ch_all = data.get("channel_hists", np.zeros((0, WEIGHT_DOMAIN.size), np.int64))
    if n_ch.shape != (n,) or ch_all.ndim != 2 or n_ch.sum() != ch_all.shape[0]:
        raise StatsError(f"operand statistics {p}: channel arrays disagree with {n} layers")
    starts = np.concatenate([[0], np.cumsum(counts)])
    c0 = np.concatenate([[0], np.cumsum(n_ch)])
    return [OperandStats(str(names[i]), data["weight_hist"][i],
                         data["field_hists"][starts[i]:starts[i + 1]],
                         **{k: data[k][i].item() for k in _SCALARS},
                         channel_hists=ch_all[c0[i]:c0[i + 1]] if n_ch[i] else None,
                         operands=_operands(data, i))
            for i in range(n)]


def _operands(data: dict[str, np.ndarray], i: int) -> SampledOperands | None:
    """Layer ``i``'s sampled operands from a loaded file (None in files written without them)."""
    keys = [f"{k}_{i}" for k in ("fields", "weights", "groups", "field_groups")]
    present = [k in data for k in keys]
    if not any(present):
        return None
    if not all(present):
        raise StatsError(f"operand statistics: layer {i} has some of {keys} but not all")
    return SampledOperands(data[f"fields_{i}"], data[f"weights_{i}"],
                           int(data[f"groups_{i}"]), data[f"field_groups_{i}"])
