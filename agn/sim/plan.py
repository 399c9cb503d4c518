"""Path selection: the fastest kernel whose exactness is proven for a (layer, multiplier) pair."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from agn.sim import onednn
from agn.sim.factors import Terms, error_rank, terms_for, u8s8_for
from agn.sim.memo import IdentityMemo
from agn.sim.operands import OperandError, integer_tensor, resolve
from hwlib import Multiplier

PATHS = ("exact", "structured", "factorised", "gather")
KERNELS = ("onednn-u8s8", "float32", "float64")
FLOAT32_EXACT = 2.0**24
FLOAT64_EXACT = 2.0**53
INT32_LIMIT = 2.0**31
_U = 2.0**-53
_MEMO = IdentityMemo(4096)  # per-weight-value bounds of each multiplier and term split
# Time relative to an exact float32 conv, measured on ResNet-20 / MNIST shapes (bench/
# engine_paths.py): a term-split kernel costs a fixed part plus a part per term (torch's float64
# conv does not use oneDNN, hence its cost); the gather path is flat.
_TERM_COST = {"onednn-u8s8": (0.5, 0.15), "float32": (0.8, 0.6), "float64": (0.8, 5.0)}
_GATHER_COST = {"float32": 7.0, "float64": 10.0}


class UnsafePathError(ValueError):
    """A requested path or kernel cannot be proven exact (or does not apply) for this layer."""


@dataclass(frozen=True)
class Plan:
    """Which engine path runs a layer, and why.

    Attributes:
        path: "exact", "structured" (family factors), "factorised" (computed factors) or "gather".
        kernel: "onednn-u8s8" (one uint8 x int8 conv), "float32" or "float64".
        rank: error terms R summed besides the exact product (table rank on the gather path).
        reason: one line on why this is the fastest exact choice.
        out_bound: proven bound on ``|accumulator|``; the output is int32 below 2^31, else int64.
        slices: input-channel slices the oneDNN kernel sums separately (in integers) so that each
            float32 output stays below 2^24; 1 for the other kernels.
    """

    path: str
    kernel: str
    rank: int
    reason: str
    out_bound: float
    slices: int = 1

    def __str__(self) -> str:
        sliced = f" x{self.slices} slices" if self.slices > 1 else ""
        return f"{self.path}/{self.kernel} rank={self.rank}{sliced}"


@dataclass(frozen=True)
class _Candidate:
    path: str
    kernel: str
    rank: int
    cost: float
    problem: str  # empty when the candidate is provably exact
    slices: int = 1


def channel_slices(channels: int, slices: int) -> list[tuple[int, int]]:
    """``slices`` contiguous ranges covering ``channels``, sizes multiples of 4 where possible."""
    size = -(-channels // slices)
    if size < channels:
        size = min(channels, size + (-size) % 4)
    return [(c, min(c + size, channels)) for c in range(0, channels, size)]


def tap_sum_max(per_value: np.ndarray, w_index: torch.Tensor | None, fan_in: int) -> float:
    """Max over output channels of ``sum_taps per_value[w]`` (worst case when ``w_index`` is None).

    Args:
        per_value: float64 (n_w,) non-negative bound per weight value.
        w_index: int64 (Cout, ...) weight indices, or None for any weights.
        fan_in: taps per output value.
    """
    if w_index is None:
        return float(per_value.max()) * fan_in
    sums = torch.from_numpy(per_value)[w_index].reshape(w_index.shape[0], -1).sum(1)
    return float(sums.max())


def plan(multiplier: Multiplier | str, weight: torch.Tensor | tuple[int, ...], groups: int = 1,
         path: str | None = None, kernel: str | None = None) -> Plan:
    """The engine path for one layer: a weight tensor gives tight bounds, a shape the worst case.

    Args:
        multiplier: hwlib multiplier or spec string.
        weight: conv weights (Cout, C/groups, kh, kw), linear weights (Cout, K), or their shape.
        groups: conv groups (the oneDNN kernel slices input channels only when groups == 1).
        path: force one of PATHS (raises UnsafePathError when it cannot be exact).
        kernel: force one of KERNELS likewise.

    Returns:
        The chosen Plan.
    """
    m = resolve(multiplier)
    if isinstance(weight, torch.Tensor):
        w_index = integer_tensor(weight, "w", m.w_domain, m.spec).long() - m.w_domain.lo
        shape = tuple(weight.shape)
    else:
        w_index, shape = None, tuple(int(s) for s in weight)
    if len(shape) not in (2, 4) or min(shape) < 1:
        raise OperandError(f"plan: expected weights (Cout, C/groups, kh, kw) or (Cout, K), "
                           f"got shape {shape}")
    return choose(m, w_index, int(np.prod(shape[1:])), path, kernel, groups)


def choose(m: Multiplier, w_index: torch.Tensor | None, fan_in: int, path: str | None = None,
           kernel: str | None = None, groups: int = 1) -> Plan:
    """The cheapest provably exact candidate (see :func:`plan`); ``w_index`` = w - w_lo or None."""
    if path is not None and path not in PATHS:
        raise UnsafePathError(f"path: expected one of {PATHS}, got {path!r}")
    if kernel is not None and kernel not in KERNELS:
        raise UnsafePathError(f"kernel: expected one of {KERNELS}, got {kernel!r}")
    out_bound = tap_sum_max(_table_bound(m), w_index, fan_in)
    cands = _term_candidates(m, w_index, fan_in, out_bound, groups) + \
        _gather_candidates(out_bound)
    wanted = [c for c in cands if (path is None or c.path == path)
              and (kernel is None or c.kernel == kernel)]
    ok = sorted((c for c in wanted if not c.problem), key=lambda c: c.cost)
    if not ok:
        why = "; ".join(f"{c.path}/{c.kernel}: {c.problem}" for c in wanted) or "does not apply"
        raise UnsafePathError(f"{m.spec}, fan-in {fan_in}: no exact engine path for "
                              f"path={path!r} kernel={kernel!r}: {why}")
    best = ok[0]
    rank = error_rank(m) if best.path == "gather" else best.rank
    reason = (f"cheapest exact of {len([c for c in cands if not c.problem])} candidates "
              f"(est. {best.cost:.2g}x an exact conv); |acc| <= {out_bound:.3g}")
    return Plan(best.path, best.kernel, rank, reason, out_bound, best.slices)


def _table_bound(m: Multiplier) -> np.ndarray:
    """Per weight value: ``max_x |m(x, w)|`` over the network domain (once per multiplier)."""
    return _MEMO((m,), lambda: np.abs(m.table()[_net_rows(m)]).max(axis=0).astype(np.float64),
                 "table")


def _net_rows(m: Multiplier) -> slice:
    xd = m.network_x_domain()
    return slice(xd.lo - m.x_domain.lo, xd.hi - m.x_domain.lo + 1)


def _term_candidates(m: Multiplier, w_index: torch.Tensor | None, fan_in: int,
                     out_bound: float, groups: int) -> list[_Candidate]:
    t = terms_for(m)
    if t is None:
        return []
    path = "exact" if t.source == "exact" else t.source
    out = []
    for k in KERNELS:
        slices, problem = 1, term_problem(m, t, k, w_index, fan_in, out_bound)
        if k == "onednn-u8s8" and problem.startswith(_OVER_2_24) and groups == 1:
            slices, problem = _u8s8_slices(m, w_index, fan_in)
        fixed, per_term = _TERM_COST[k]
        n_terms = t.rank + 1 if k != "onednn-u8s8" or u8s8_for(m) is None else \
            len(u8s8_for(m).f8)  # type: ignore[union-attr]
        cost = fixed + per_term * n_terms + _SLICE_COST * (slices - 1)
        out.append(_Candidate(path, k, t.rank, cost, problem, slices))
    return out


_OVER_2_24 = "float32 output reaches"
_SLICE_COST = 0.3


def term_problem(m: Multiplier, t: Terms, kernel: str, w_index: torch.Tensor | None, fan_in: int,
                 out_bound: float) -> str:
    """Why ``kernel`` cannot sum the terms ``t`` exactly for these weights ('' when it can)."""
    partial = tap_sum_max(_MEMO((t,), lambda: np.abs(t.f).max(axis=1).astype(np.float64)
                                @ np.abs(t.g).astype(np.float64), "partial"), w_index, fan_in)
    if kernel == "onednn-u8s8":
        if not t.integral:
            return "features are not integers"
        if not onednn.available():
            return f"oneDNN uint8 x int8 self-test failed ({onednn.selftest().detail})"
        t8 = u8s8_for(m)
        if t8 is None:
            return "features do not fit uint8 x int8"
        int32 = tap_sum_max(_MEMO((t8,), lambda: t8.f8.max(axis=1).astype(np.float64)
                                  @ np.abs(t8.g8).astype(np.float64), "int32"), w_index, fan_in)
        if int32 >= INT32_LIMIT:
            return f"int32 partial sums reach {int32:.4g} >= 2^31"
        final = tap_sum_max(_u8s8_output_bound(m), w_index, fan_in)
        return "" if final < FLOAT32_EXACT else f"{_OVER_2_24} {final:.4g} >= 2^24"
    limit = FLOAT32_EXACT if kernel == "float32" else FLOAT64_EXACT
    if t.integral:
        return "" if partial < limit else (f"partial sums reach {partial:.4g} >= 2^"
                                           f"{int(np.log2(limit))}")
    if kernel == "float32":
        return "features are not integers (float64 with proven rounding only)"
    n = fan_in * (t.rank + 1)
    err = fan_in * t.residual + n * _U / (1 - n * _U) * partial * 1.01
    return "" if err < 0.25 else f"rounding error bound {err:.3g} >= 0.25"


def _u8s8_output_bound(m: Multiplier) -> np.ndarray:
    """Per weight value: bound on one tap's contribution to the oneDNN float output.

    The kernel outputs ``acc - correction``: ``max_x |m(x, w)|`` plus ``|sum_r offset_r g_r(w)|``.
    """
    t8 = u8s8_for(m)
    assert t8 is not None
    return _MEMO((m, t8), lambda: _table_bound(m) + np.abs(
        t8.offset.astype(np.float64) @ t8.g8.astype(np.float64)), "u8s8 output")


def _u8s8_slices(m: Multiplier, w_index: torch.Tensor | None, fan_in: int) -> tuple[int, str]:
    """Fewest input-channel slices whose float32 outputs all stay below 2^24 (conv, groups 1)."""
    per_value = _u8s8_output_bound(m)
    if w_index is None:  # any weights: every tap at its worst
        per_channel = np.full((1, fan_in), per_value.max())
    else:
        per_channel = torch.from_numpy(per_value)[w_index].reshape(
            w_index.shape[0], w_index.shape[1], -1).sum(2).numpy()  # (Cout, Cg)
    channels = per_channel.shape[1]
    for slices in range(2, channels + 1):
        ranges = channel_slices(channels, slices)
        if len(ranges) != slices:  # kernels rebuild the ranges from the count alone
            continue
        if max(per_channel[:, a:b].sum(1).max() for a, b in ranges) < FLOAT32_EXACT:
            return slices, ""
    return 1, f"{_OVER_2_24} 2^24 even one input channel at a time"


def _gather_candidates(out_bound: float) -> list[_Candidate]:
    return [_Candidate("gather", k, -1, _GATHER_COST[k],
                       "" if out_bound < (FLOAT32_EXACT if k == "float32" else FLOAT64_EXACT)
                       else f"table sums reach {out_bound:.4g}")
            for k in ("float32", "float64")]
