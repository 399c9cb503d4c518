"""The engine's kernels: the fused term-split convolution (oneDNN or float) and the gather path."""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from agn.sim import cgather, ckernel, features, intmm, onednn
from agn.sim.factors import Terms, U8S8Terms
from agn.sim.memo import IdentityMemo
from agn.sim.plan import channel_slices

GATHER_CHUNK_BYTES = 1 << 20  # table bytes summed per embedding_bag call or compiled gather
# pass (stays in L2; 0.5, 2 and 4 MiB measured slower with the compiled kernel)
_SLICES_LOCK = threading.Lock()
_MEMO = IdentityMemo(1024)  # feature ops per term split (one per multiplier, not per layer)
FEATURE_CHUNK_BYTES = 32 << 20  # activation features built and convolved per batch slice
# (fewer, larger slices measured faster with the compiled feature kernel: bench/engine_paths.py)


@dataclass(frozen=True)
class Gemm:
    """A 1x1 layer's uint8 x int8 features summed as one int8 matrix product (:mod:`intmm`).

    Attributes:
        weights: int8 (K', Cout), row ``r * Cg' + c`` the weight feature ``g_r`` of channel c.
        correction: int64 (Cout,) added to every output: ``128 * sum_taps g`` (the features
            enter as ``f - 128``) plus the activation-feature offsets.
        correction32: ``correction`` as int32 (it is below 2^31).
        group_channels: Cg' of the features the weights expect.
        compiled: the features come from the compiled kernel (else from the torch ops).
    """

    weights: torch.Tensor
    correction: torch.Tensor
    correction32: torch.Tensor
    group_channels: int
    compiled: bool


@dataclass(frozen=True)
class TermsKernel:
    """A layer's prepared term-split convolution (weights transformed and packed once).

    Attributes:
        kernel: "onednn-u8s8", "float32" or "float64".
        ops: one FeatureOp per term.
        slices: per input-channel slice (c0, c1, Cg', weights): weights packed for oneDNN, or
            float weights (Cout, G-major (R + 1) * Cg', kh, kw). Cg' is c1 - c0 for the compiled
            feature kernel, else :func:`group_width` of it (extra channels hold x_lo and meet
            zero weights).
        correction: int64 (Cout,) added to every output (activation-feature offsets), or None.
        padding: padding the convolution itself applies (features of the zero point are all 0),
            else (0, 0) and the activations are padded with the zero point before the features.
        round_output: float outputs are rounded (non-integer features, error proven < 1/4).
        packed: ``ops`` for the compiled feature kernel (uint8 features), else None.
        gemm: the int8 matrix product that replaces the oneDNN convolution on inputs of one
            pixel (linear layers), or None.
        pending: builds ``slices`` (empty until then) when a gemm made them a fallback.
    """

    kernel: str
    ops: list[features.FeatureOp]
    slices: list[tuple[int, int, int, torch.Tensor]]
    correction: torch.Tensor | None
    padding: tuple[int, int]
    round_output: bool
    packed: ckernel.PackedOps | None = None
    gemm: Gemm | None = None
    pending: Callable[[], list[tuple[int, int, int, torch.Tensor]]] | None = None

    def conv_slices(self) -> list[tuple[int, int, int, torch.Tensor]]:
        """``slices``, built by ``pending`` on the first call that needs them."""
        if not self.slices and self.pending is not None:
            with _SLICES_LOCK:
                if not self.slices:
                    self.slices.extend(self.pending())
        return self.slices

    @property
    def nbytes(self) -> int:
        """Memory held by the prepared weights."""
        extra = self.gemm.weights.numel() if self.gemm is not None else 0
        return extra + sum(w.numel() * w.element_size() for *_, w in self.slices)


@dataclass(frozen=True)
class GatherKernel:
    """A layer's lookup tables ``T[k * n_x + x, co] = m(x, w[co, k])``, one per group.

    Taps ``k`` run over (ky, kx, c) so that unfolded activations copy in contiguous runs; they
    are summed in chunks of whole kernel positions whose table rows stay in cache.

    Attributes:
        kernel: "float32" or "float64" tables.
        n_x: activation domain size.
        tables: per group, (K * n_x, Cout/groups).
        chunks: (ky0, ky1, kx0, kx1) kernel windows summed per embedding_bag call.
    """

    kernel: str
    n_x: int
    tables: list[torch.Tensor]
    chunks: list[tuple[int, int, int, int]]

    @property
    def nbytes(self) -> int:
        """Memory held by the lookup tables."""
        return sum(t.numel() * t.element_size() for t in self.tables)


def group_width(channels: int) -> int:
    """Channels per group and term in a feature tensor the torch ops build.

    From 3 channels on they are rounded up to a multiple of 4, so that every term is copied in
    words of at least 4 bytes; 1 or 2 channels stay as they are, because padding them would
    double or quadruple the convolution (MNIST's first conv: 1.9x instead of 9x an exact conv,
    bench/engine_paths.py). The compiled feature kernel keeps every channel count as it is
    (ResNet-20's first conv: a third faster than with 4 channels).
    """
    return channels if channels <= 2 else channels + (-channels) % 4


def term_major_weights(w_index: torch.Tensor, g: np.ndarray, group_channels: int,
                       dtype: torch.dtype) -> torch.Tensor:
    """Weight features (Cout, (R + 1) * Cg', kh, kw), input channel ``r * Cg' + c`` per group.

    Args:
        w_index: int64 (Cout, Cg, kh, kw) weight indices (w - w_lo).
        g: (R + 1, n_w) weight features per index.
        group_channels: Cg' >= Cg; channels Cg..Cg'-1 get zero weights.
        dtype: weight dtype of the kernel.
    """
    co, cg, kh, kw = w_index.shape
    r1 = g.shape[0]
    gt = torch.from_numpy(np.ascontiguousarray(g.T)).to(dtype)  # (n_w, R+1)
    picked = gt[w_index].permute(0, 4, 1, 2, 3)  # (Cout, R+1, Cg, kh, kw), one gather
    make = torch.empty if group_channels == cg else torch.zeros
    w = make((co, r1, group_channels, kh, kw), dtype=dtype)
    w[:, :, :cg] = picked
    return w.view(co, r1 * group_channels, kh, kw)


def prepare_terms(t: Terms, t8: U8S8Terms | None, kernel: str, w_index: torch.Tensor,
                  stride: tuple[int, int], padding: tuple[int, int], groups: int, x_lo: int,
                  zero_point: int, slices: int = 1) -> TermsKernel:
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
    ops, c_ops = _MEMO((f,), lambda: _feature_ops(f, x_lo, dtype, kernel), (x_lo, dtype, kernel))
    compiled = c_ops is not None and ckernel.available()
    build = functools.partial(_conv_slices, w_index, g, slices, compiled, wdtype, kernel, stride,
                              inner, groups)
    gemm = None
    if kernel == "onednn-u8s8" and groups == 1 and w_index.shape[2:] == (1, 1) \
            and stride == (1, 1) and padding == (0, 0):
        gemm = _prepare_gemm(f, g, w_index, corr_or_none, compiled)
    # with a gemm the convolution is a fallback (inputs of more than one pixel, the other
    # feature builder), packed on first need
    return TermsKernel(kernel, ops, [] if gemm is not None else build(), corr_or_none, inner,
                       kernel != "onednn-u8s8" and not t.integral, c_ops, gemm,
                       build if gemm is not None else None)


def _conv_slices(w_index: torch.Tensor, g: np.ndarray, slices: int, compiled: bool,
                 wdtype: torch.dtype, kernel: str, stride: tuple[int, int],
                 inner: tuple[int, int], groups: int) -> list[tuple[int, int, int, torch.Tensor]]:
    """The input-channel slices' weights, packed for oneDNN or as float tensors."""
    prepared = []
    for c0, c1 in channel_slices(w_index.shape[1], slices):
        gc = c1 - c0 if compiled else group_width(c1 - c0)
        w = term_major_weights(w_index[:, c0:c1], g, gc, wdtype)
        packed = onednn.prepack(w, stride, inner, groups) if kernel == "onednn-u8s8" else w
        prepared.append((c0, c1, gc, packed))
    return prepared


def _feature_ops(f: np.ndarray, x_lo: int, dtype: torch.dtype, kernel: str
                 ) -> tuple[list[features.FeatureOp], ckernel.PackedOps | None]:
    """The feature ops of ``f`` and their form for the compiled kernel (None when it has none)."""
    ops = features.feature_ops(f, x_lo, dtype)
    return ops, ckernel.pack(ops) if kernel == "onednn-u8s8" and x_lo == 0 else None


def _prepare_gemm(f8: np.ndarray, g8: np.ndarray, w_index: torch.Tensor,
                  correction: torch.Tensor | None, compiled: bool) -> Gemm | None:
    """The int8 matrix product of a 1x1 layer's features, or None when ``torch._int_mm`` failed
    its self-test or a shifted sum or the correction could reach 2^31."""
    if not intmm.available() or not intmm.fits(f8, g8, w_index, w_index[0].numel()):
        return None
    co, c = w_index.shape[:2]
    gc = c if compiled else group_width(c)
    w = term_major_weights(w_index, g8, gc, torch.int64).reshape(co, -1)
    corr = 128 * w.sum(1) + (correction if correction is not None else 0)
    if int(corr.abs().max()) >= intmm.INT32_LIMIT:
        return None
    return Gemm(intmm.row_major(w.to(torch.int8).t()), corr, corr.to(torch.int32), gc, compiled)


def run_terms(k: TermsKernel, x: torch.Tensor, padding: tuple[int, int], zero_point: int,
              x_lo: int, c_out: int, stride: tuple[int, int], groups: int,
              out_dtype: torch.dtype) -> torch.Tensor:
    """The fused term-split convolution of activations ``x`` (N, C, H, W, integer values).

    Runs over slices of the batch whose features fit FEATURE_CHUNK_BYTES, which bounds the
    feature memory; input-channel slices add up in ``out_dtype``.
    uint8 features of uint8 activations come from the compiled kernel where it is available.
    Inputs of one pixel with a prepared :class:`Gemm` (linear layers) are summed by an int8
    matrix product instead of the oneDNN convolution.
    """
    outer = (0, 0) if k.padding == padding else padding
    n, c, h, w = x.shape
    cg = c // groups
    onednn_kernel = k.kernel == "onednn-u8s8"
    compiled = k.packed is not None and x.dtype == torch.uint8 and ckernel.available()
    gemm = k.gemm if k.gemm is not None and k.gemm.compiled == compiled and h * w == 1 else None
    slices = [] if gemm is not None else k.conv_slices()
    dtype = torch.uint8 if onednn_kernel else slices[0][3].dtype
    widest = gemm.group_channels if gemm is not None else max(gc for _, _, gc, _ in slices)
    per_image = ((h + 2 * padding[0]) * (w + 2 * padding[1]) * len(k.ops) * groups * widest
                 * dtype.itemsize)
    step = max(1, FEATURE_CHUNK_BYTES // per_image)
    chunks = []
    for n0 in range(0, n, step):
        xs = x[n0:n0 + step].reshape(-1, groups, cg, h, w)
        if gemm is not None:
            chunks.append(_gemm_chunk(k, gemm, xs, zero_point, x_lo, out_dtype))
            continue
        acc: torch.Tensor | None = None
        for c0, c1, gc, weights in slices:
            feats = _features(k, xs[:, :, c0:c1], gc, outer, zero_point, x_lo, dtype, compiled)
            if onednn_kernel:
                y = onednn.conv(feats, weights, c_out, stride, k.padding, groups)
            else:
                y = F.conv2d(feats, weights, stride=stride, padding=k.padding, groups=groups)
                if k.round_output:
                    y = y.round()
            if compiled and out_dtype == torch.int32:
                y = ckernel.to_int32(y)  # in place, no new buffer to fault in
            else:
                y = y.to(out_dtype)
            acc = y if acc is None else acc.add_(y)
        assert acc is not None
        chunks.append(acc)
    out = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
    if k.correction is not None and gemm is None:
        out += k.correction.to(out_dtype)[:, None, None]
    return out


def _features(k: TermsKernel, xs: torch.Tensor, gc: int, outer: tuple[int, int],
              zero_point: int, x_lo: int, dtype: torch.dtype, compiled: bool) -> torch.Tensor:
    """Features (N, G * (R + 1) * gc, Hp, Wp), channels-last, of activations (N, G, Cs, H, W)."""
    if compiled:
        assert k.packed is not None
        return ckernel.build(xs, k.packed, gc, outer, zero_point, x_lo, reuse=True)
    n, groups, cs, h, w = xs.shape
    part = F.pad(xs, (0, 0, 0, 0, 0, gc - cs), value=x_lo)
    x_cl = features.padded_channels_last(part.reshape(-1, groups * gc, h, w), outer, zero_point)
    return features.build(x_cl, k.ops, groups, x_lo, dtype)


def _gemm_chunk(k: TermsKernel, gemm: Gemm, xs: torch.Tensor, zero_point: int, x_lo: int,
                out_dtype: torch.dtype) -> torch.Tensor:
    """One batch slice (N, 1, C, 1, 1) of a 1x1 layer as an int8 matrix product, (N, Cout, 1, 1)."""
    feats = _features(k, xs, gemm.group_channels, (0, 0), zero_point, x_lo, torch.uint8,
                      gemm.compiled)
    a = intmm.shift_features(feats.reshape(xs.shape[0], -1))
    y = intmm.matmul(a, gemm.weights)
    y = y.add_(gemm.correction32) if out_dtype == torch.int32 else \
        y.to(out_dtype).add_(gemm.correction)
    return y[:, :, None, None]


def prepare_gather(table: np.ndarray, kernel: str, w_index: torch.Tensor,
                   groups: int) -> GatherKernel:
    """Per-group lookup tables ``T[k * n_x + x, co] = m(x, w[co, k])`` (K * n_x, Cout/groups)."""
    dtype = torch.float32 if kernel == "float32" else torch.float64
    tab = torch.from_numpy(np.ascontiguousarray(table)).to(dtype)  # (n_x, n_w)
    n_x = tab.shape[0]
    co, cg, kh, kw = w_index.shape
    og = co // groups
    wk = w_index.permute(0, 2, 3, 1).reshape(co, -1)  # taps in (ky, kx, c) order
    tables = [cgather.with_slack(tab[:, wk[gi * og:(gi + 1) * og]].permute(2, 0, 1)
                                 .reshape(-1, og)) for gi in range(groups)]
    positions = max(1, GATHER_CHUNK_BYTES // (n_x * og * cg * tab.element_size()))
    if positions >= kw:
        rows = positions // kw
        chunks = [(y, min(y + rows, kh), 0, kw) for y in range(0, kh, rows)]
    else:
        chunks = [(y, y + 1, x, min(x + positions, kw)) for y in range(kh)
                  for x in range(0, kw, positions)]
    return GatherKernel(kernel, n_x, tables, chunks)


def run_gather(k: GatherKernel, x: torch.Tensor, padding: tuple[int, int], zero_point: int,
               x_lo: int, kernel_hw: tuple[int, int], c_out: int, stride: tuple[int, int],
               groups: int, out_dtype: torch.dtype) -> torch.Tensor:
    """Sum each output's table rows, chunk by chunk: with the compiled gather kernel when it is
    loaded (float32 tables, at most 256 activation values), else with embedding_bag over the
    unfolded activations, each tap's index offset by its row block."""
    lib = ckernel.library() if k.kernel == "float32" and k.n_x <= 256 and ckernel.available() \
        else None
    if lib is None:
        return _gather_torch(k, x, padding, zero_point, x_lo, kernel_hw, c_out, stride, groups,
                             out_dtype)
    (kh, kw), (sy, sx) = kernel_hw, stride
    xcl = features.padded_channels_last(x, padding, zero_point)
    if x_lo or xcl.dtype != torch.uint8:
        xcl = (xcl.to(torch.int32) - x_lo).to(torch.uint8)
    n, hp, wp, c = xcl.shape
    ho, wo = (hp - kh) // sy + 1, (wp - kw) // sx + 1
    cg, og = c // groups, c_out // groups
    out = torch.empty((n * ho * wo, c_out), dtype=torch.float32)
    xoff, toff = cgather.tap_offsets((kh, kw), cg, wp, c, k.n_x, og)
    per_chunk = max(1, GATHER_CHUNK_BYTES // (k.n_x * og * 4))
    for gi, table in enumerate(k.tables):
        for t0 in range(0, len(xoff), per_chunk):
            t1 = min(len(xoff), t0 + per_chunk)
            cgather.gather(lib, xcl, (n, ho, wo), stride, xoff[t0:t1] + gi * cg, toff[t0:t1],
                           table, out[:, gi * og:(gi + 1) * og], t0 > 0)
    y = out.view(n, ho, wo, c_out).permute(0, 3, 1, 2)
    return ckernel.to_int32(y) if out_dtype == torch.int32 else y.to(out_dtype)


def _gather_torch(k: GatherKernel, x: torch.Tensor, padding: tuple[int, int], zero_point: int,
                  x_lo: int, kernel_hw: tuple[int, int], c_out: int, stride: tuple[int, int],
                  groups: int, out_dtype: torch.dtype) -> torch.Tensor:
    """The gather path through embedding_bag (the compiled kernel's fallback)."""
    (kh, kw), (sy, sx) = kernel_hw, stride
    xcl = features.padded_channels_last(x, padding, zero_point).to(torch.int32)
    if x_lo:
        xcl -= x_lo
    cols = xcl.unfold(1, kh, sy).unfold(2, kw, sx).permute(0, 1, 2, 4, 5, 3)  # (N,Ho,Wo,kh,kw,C)
    n, ho, wo, _, _, c = cols.shape
    cg, og = c // groups, c_out // groups
    out = torch.empty((n * ho * wo, c_out), dtype=k.tables[0].dtype)
    for gi, table in enumerate(k.tables):
        acc = out[:, gi * og:(gi + 1) * og]
        for j, (y0, y1, x0, x1) in enumerate(k.chunks):
            window = cols[:, :, :, y0:y1, x0:x1, gi * cg:(gi + 1) * cg]
            taps = torch.arange(window[0, 0, 0].numel(), dtype=torch.int32) * k.n_x
            idx = torch.empty(window.shape, dtype=torch.int32)
            torch.add(window, taps.view(window.shape[3:]), out=idx)  # copy and offset, one pass
            first = (y0 * kw + x0) * cg * k.n_x
            rows = table[first:first + taps.numel() * k.n_x]
            summed = F.embedding_bag(idx.view(n * ho * wo, -1), rows, mode="sum")
            if j == 0:
                acc.copy_(summed)
            else:
                acc += summed
    return out.reshape(n, ho, wo, c_out).permute(0, 3, 1, 2).to(out_dtype)
