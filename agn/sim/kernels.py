"""The engine's kernels: the fused term-split convolution (float or oneDNN) and the gather path."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from agn.sim import onednn
from agn.sim.factors import Terms, U8S8Terms

GATHER_TILE = 1 << 20  # table entries per output-channel tile of the gather path


@dataclass(frozen=True)
class Prepared:
    """Per-layer weight transforms, built once and reused while the weights do not change.

    Attributes:
        kernel: the kernel these transforms are for.
        feature_table: (n_x, R + 1) activation feature table, or (n_x, n_w) product table (gather).
        weights: fused conv weights (Cout, C/groups * (R + 1), kh, kw), gather tables per
            (group, tile), or packed oneDNN weights.
        correction: int64 (Cout,) added to the oneDNN output (feature offsets), else None.
        round_output: float outputs must be rounded (non-integer features, proven error < 1/4).
    """

    kernel: str
    feature_table: torch.Tensor
    weights: object
    correction: torch.Tensor | None
    round_output: bool


def features_cl(x_index: torch.Tensor, feature_table: torch.Tensor) -> torch.Tensor:
    """Activation features (N, C * (R + 1), H, W) in channels-last memory, channel ``c*(R+1) + r``.

    Args:
        x_index: int64 (N, C, H, W) activation indices (x - x_lo), already padded.
        feature_table: (n_x, R + 1) feature values per activation index.
    """
    n, c, h, w = x_index.shape
    r1 = feature_table.shape[1]
    f = F.embedding(x_index.permute(0, 2, 3, 1), feature_table)  # (N, H, W, C, R+1)
    return f.reshape(n, h, w, c * r1).permute(0, 3, 1, 2)


def fused_weights(w_index: torch.Tensor, weight_table: torch.Tensor) -> torch.Tensor:
    """Weight features (Cout, C/groups * (R + 1), kh, kw) matching :func:`features_cl`.

    Args:
        w_index: int64 (Cout, C/groups, kh, kw) weight indices (w - w_lo).
        weight_table: (n_w, R + 1) feature values per weight index.
    """
    co, cg, kh, kw = w_index.shape
    g = F.embedding(w_index, weight_table)  # (Cout, Cg, kh, kw, R+1)
    return g.permute(0, 1, 4, 2, 3).reshape(co, cg * weight_table.shape[1], kh, kw)


def prepare_terms(t: Terms, t8: U8S8Terms | None, kernel: str, w_index: torch.Tensor,
                  stride: tuple[int, int], groups: int) -> Prepared:
    """Weight transforms of the term-split kernel ``kernel`` for one layer."""
    if kernel == "onednn-u8s8":
        assert t8 is not None, "planner chose oneDNN for terms that do not fit uint8 x int8"
        w8 = fused_weights(w_index, torch.from_numpy(t8.g8.T.astype(np.int8)).contiguous())
        corr = torch.from_numpy(t8.offset @ t8.g8)[w_index].reshape(w_index.shape[0], -1).sum(1)
        return Prepared(kernel, torch.from_numpy(t8.f8.T.astype(np.uint8)).contiguous(),
                        onednn.prepack(w8, stride, groups), corr, False)
    dtype = torch.float32 if kernel == "float32" else torch.float64
    ftab = torch.from_numpy(np.ascontiguousarray(t.f.T)).to(dtype)
    gtab = torch.from_numpy(np.ascontiguousarray(t.g.T)).to(dtype)
    return Prepared(kernel, ftab, fused_weights(w_index, gtab), None, not t.integral)


def run_terms(prep: Prepared, x_index: torch.Tensor, c_out: int, stride: tuple[int, int],
              groups: int, out_dtype: torch.dtype) -> torch.Tensor:
    """The fused term-split convolution of padded activation indices, as ``out_dtype``."""
    feats = features_cl(x_index, prep.feature_table)
    if prep.kernel == "onednn-u8s8":
        y = onednn.conv(feats, prep.weights, c_out, stride, groups).to(out_dtype)
        assert prep.correction is not None
        return (y + prep.correction.to(out_dtype)[:, None, None]).contiguous()
    y = F.conv2d(feats, prep.weights, stride=stride, groups=groups)  # type: ignore[arg-type]
    if prep.round_output:
        y = y.round()
    return y.to(out_dtype, memory_format=torch.contiguous_format)


def prepare_gather(table: np.ndarray, kernel: str, w_index: torch.Tensor,
                   groups: int) -> Prepared:
    """Per-group, per-tile lookup tables ``T[k * n_x + x, co] = m(x, w[co, k])``."""
    dtype = torch.float32 if kernel == "float32" else torch.float64
    tab = torch.from_numpy(np.ascontiguousarray(table)).to(dtype)  # (n_x, n_w)
    n_x = tab.shape[0]
    co = w_index.shape[0]
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
    return Prepared(kernel, tab, tables, None, False)


def run_gather(prep: Prepared, x_index: torch.Tensor, kernel_hw: tuple[int, int], c_out: int,
               stride: tuple[int, int], groups: int, out_dtype: torch.dtype) -> torch.Tensor:
    """Unfold, offset each tap's index by ``k * n_x`` and sum table rows with embedding_bag."""
    n_x = prep.feature_table.shape[0]
    (kh, kw), (sy, sx) = kernel_hw, stride
    xcl = x_index.permute(0, 2, 3, 1)
    cols = xcl.unfold(1, kh, sy).unfold(2, kw, sx)  # (N, Ho, Wo, C, kh, kw)
    n, ho, wo, c = cols.shape[:4]
    cg = c // groups
    out = torch.empty((n, ho, wo, c_out), dtype=prep.feature_table.dtype)
    offsets = None
    current = -1
    idx = cols
    for gi, start, stop, table in prep.weights:  # type: ignore[attr-defined]
        if gi != current:
            idx = cols[:, :, :, gi * cg:(gi + 1) * cg].reshape(n * ho * wo, cg * kh * kw)
            if offsets is None:
                offsets = torch.arange(cg * kh * kw, dtype=torch.int64) * n_x
            idx = idx + offsets
            current = gi
        out[..., start:stop] = F.embedding_bag(idx, table, mode="sum").reshape(n, ho, wo, -1)
    return out.permute(0, 3, 1, 2).to(out_dtype, memory_format=torch.contiguous_format)
