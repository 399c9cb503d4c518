"""The engine's kernels: the fused term-split convolution (oneDNN or float) and the gather path."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from agn.sim import features, onednn
from agn.sim.factors import Terms, U8S8Terms

GATHER_TILE = 1 << 20  # table entries per output-channel tile of the gather path


@dataclass(frozen=True)
class TermsKernel:
    """A layer's prepared term-split convolution (weights transformed and packed once).

    Attributes:
        kernel: "onednn-u8s8", "float32" or "float64".
        ops: one FeatureOp per term.
        weights: packed oneDNN weights, or float weights (Cout, G-major (R + 1) * Cg, kh, kw).
        correction: int64 (Cout,) added to every output (activation-feature offsets), or None.
        padding: padding the convolution itself applies (features of the zero point are all 0),
            else (0, 0) and the activations are padded with the zero point before the features.
        round_output: float outputs are rounded (non-integer features, error proven < 1/4).
    """

    kernel: str
    ops: list[features.FeatureOp]
    weights: torch.Tensor
    correction: torch.Tensor | None
    padding: tuple[int, int]
    round_output: bool


@dataclass(frozen=True)
class GatherKernel:
    """A layer's per-(group, output tile) lookup tables ``T[k * n_x + x, co] = m(x, w[co, k])``."""

    kernel: str
    n_x: int
    tables: list[tuple[int, int, int, torch.Tensor]]


def term_major_weights(w_index: torch.Tensor, g: np.ndarray, groups: int,
                       dtype: torch.dtype) -> torch.Tensor:
    """Weight features (Cout, (R + 1) * Cg, kh, kw), input channel ``r * Cg + c`` in each group.

    Args:
        w_index: int64 (Cout, Cg, kh, kw) weight indices (w - w_lo).
        g: (R + 1, n_w) weight features per index.
        groups: conv groups.
        dtype: weight dtype of the kernel.
    """
    co, cg, kh, kw = w_index.shape
    gt = torch.from_numpy(np.ascontiguousarray(g)).to(dtype)  # (R+1, n_w)
    return gt[:, w_index].permute(1, 0, 2, 3, 4).reshape(co, g.shape[0] * cg, kh, kw).contiguous()


def prepare_terms(t: Terms, t8: U8S8Terms | None, kernel: str, w_index: torch.Tensor,
                  stride: tuple[int, int], padding: tuple[int, int], groups: int, x_lo: int,
                  zero_point: int) -> TermsKernel:
    """Transform and pack a layer's weights for the term-split kernel ``kernel``."""
    if kernel == "onednn-u8s8":
        assert t8 is not None, "planner chose oneDNN for terms that do not fit uint8 x int8"
        f, g = t8.f8, t8.g8
        corr = torch.from_numpy(t8.offset @ g)[w_index].reshape(w_index.shape[0], -1).sum(1)
        corr_or_none = corr if bool(corr.any()) else None
        dtype, wdtype = torch.uint8, torch.int8
    else:
        f, g, corr_or_none = t.f, t.g, None
        dtype = wdtype = torch.float32 if kernel == "float32" else torch.float64
    zero_features = not f[:, zero_point - x_lo].any()
    inner = padding if zero_features else (0, 0)
    w = term_major_weights(w_index, g, groups, wdtype)
    packed = onednn.prepack(w, stride, inner, groups) if kernel == "onednn-u8s8" else w
    return TermsKernel(kernel, features.feature_ops(f, x_lo, dtype), packed, corr_or_none, inner,
                       kernel != "onednn-u8s8" and not t.integral)


def run_terms(k: TermsKernel, x: torch.Tensor, padding: tuple[int, int], zero_point: int,
              x_lo: int, c_out: int, stride: tuple[int, int], groups: int,
              out_dtype: torch.dtype) -> torch.Tensor:
    """The fused term-split convolution of activations ``x`` (N, C, H, W, integer values)."""
    outer = (0, 0) if k.padding == padding else padding
    x_cl = features.padded_channels_last(x, outer, zero_point)
    dtype = torch.uint8 if k.kernel == "onednn-u8s8" else k.weights.dtype
    feats = features.build(x_cl, k.ops, groups, x_lo, dtype)
    if k.kernel == "onednn-u8s8":
        y = onednn.conv(feats, k.weights, c_out, stride, k.padding, groups).to(out_dtype)
        if k.correction is not None:
            y += k.correction.to(out_dtype)[:, None, None]
        return y
    y = F.conv2d(feats, k.weights, stride=stride, padding=k.padding, groups=groups)
    if k.round_output:
        y = y.round()
    return y.to(out_dtype)


def prepare_gather(table: np.ndarray, kernel: str, w_index: torch.Tensor,
                   groups: int) -> GatherKernel:
    """Per-group, per-tile lookup tables ``T[k * n_x + x, co] = m(x, w[co, k])``."""
    dtype = torch.float32 if kernel == "float32" else torch.float64
    tab = torch.from_numpy(np.ascontiguousarray(table)).to(dtype)  # (n_x, n_w)
    n_x, co = tab.shape[0], w_index.shape[0]
    og = co // groups
    wk = w_index.reshape(co, -1)
    k = wk.shape[1]
    tile = max(1, min(og, GATHER_TILE // (k * n_x)))
    tables = []
    for gi in range(groups):
        for start in range(gi * og, (gi + 1) * og, tile):
            stop = min(start + tile, (gi + 1) * og)
            sub = tab[:, wk[start:stop]]  # (n_x, tile, K)
            tables.append((gi, start, stop, sub.permute(2, 0, 1).reshape(k * n_x, stop - start)
                           .contiguous()))
    return GatherKernel(kernel, n_x, tables)


def run_gather(k: GatherKernel, x: torch.Tensor, padding: tuple[int, int], zero_point: int,
               x_lo: int, kernel_hw: tuple[int, int], c_out: int, stride: tuple[int, int],
               groups: int, out_dtype: torch.dtype) -> torch.Tensor:
    """Unfold, offset each tap's index by ``k * n_x`` and sum table rows with embedding_bag."""
    (kh, kw), (sy, sx) = kernel_hw, stride
    xcl = features.padded_channels_last(x, padding, zero_point)
    cols = xcl.unfold(1, kh, sy).unfold(2, kw, sx)  # (N, Ho, Wo, C, kh, kw)
    n, ho, wo, c = cols.shape[:4]
    cg = c // groups
    offsets = torch.arange(cg * kh * kw, dtype=torch.int32) * k.n_x - x_lo
    out = torch.empty((n, ho, wo, c_out), dtype=k.tables[0][3].dtype)
    current, idx = -1, cols
    for gi, start, stop, table in k.tables:
        if gi != current:
            idx = cols[:, :, :, gi * cg:(gi + 1) * cg].reshape(n * ho * wo, cg * kh * kw)
            idx = idx.to(torch.int32) + offsets
            current = gi
        out[..., start:stop] = F.embedding_bag(idx, table, mode="sum").reshape(n, ho, wo, -1)
    return out.permute(0, 3, 1, 2).to(out_dtype)
