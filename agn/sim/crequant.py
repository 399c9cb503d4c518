"""The compiled requantisation: int32 accumulators to uint8 activations in one pass.

``clip(((acc * mult + konst) >> shift) + zp_out, lo, hi)`` per output channel, with
``konst = bias * mult + 2^(shift - 1)``: the same int64 arithmetic as the torch executor's
``agn.intsim._requant`` (which stays the fallback), in one pass instead of six. Compiled with the
feature kernel's library (:mod:`agn.sim.ckernel`), which checks it with :func:`self_check`.
"""
from __future__ import annotations

import ctypes

import numpy as np
import torch

SOURCE = r"""
/* Requantisation (agn.sim.crequant): element (a, ch, b) of an (outer, c, inner) int32 block at
 * a * sa + ch * sc + b * sb, in acc and out alike; either the channels are innermost (sc == 1,
 * inner == 1) or each channel's run is (sb == 1). No product overflows: |acc| < 2^31,
 * 0 < mult < 2^31 and |konst| < 2^62 (the IR's bounds), so the int64 sum is below 2^63. */
static inline uint8_t requant_one(int32_t acc, int64_t m, int64_t k, int64_t s, int64_t zp,
                                  int64_t lo, int64_t hi) {
    int64_t v = (((int64_t)acc * m + k) >> s) + zp;
    return (uint8_t)(v < lo ? lo : v > hi ? hi : v);
}

int agn_requant(const int32_t *acc, uint8_t *out, int64_t outer, int64_t c, int64_t inner,
                int64_t sa, int64_t sc, int64_t sb, const int64_t *mult, const int64_t *konst,
                const int64_t *shift, int zp, int lo, int hi) {
    if (sc == 1 && inner == 1 && sa == c && c < 64) {
        /* dense and few channels: the per-channel constants repeated over a period of whole
         * pixels, so the inner loop runs over up to 64 consecutive elements */
        int64_t mx[64], kx[64], sx[64];
        const int64_t period = c * (64 / c), total = outer * c;
        for (int64_t j = 0; j < period; ++j)
            mx[j] = mult[j % c], kx[j] = konst[j % c], sx[j] = shift[j % c];
        int64_t i = 0;
        for (; i + period <= total; i += period)
            for (int64_t j = 0; j < period; ++j)
                out[i + j] = requant_one(acc[i + j], mx[j], kx[j], sx[j], zp, lo, hi);
        for (int64_t j = 0; i + j < total; ++j)
            out[i + j] = requant_one(acc[i + j], mx[j], kx[j], sx[j], zp, lo, hi);
        return 0;
    }
    if (sc == 1 && inner == 1) {
        for (int64_t a = 0; a < outer; ++a) {
            const int32_t *x = acc + a * sa;
            uint8_t *o = out + a * sa;
            for (int64_t ch = 0; ch < c; ++ch)
                o[ch] = requant_one(x[ch], mult[ch], konst[ch], shift[ch], zp, lo, hi);
        }
        return 0;
    }
    if (sb != 1) return -1;
    for (int64_t a = 0; a < outer; ++a)
        for (int64_t ch = 0; ch < c; ++ch) {
            const int32_t *x = acc + a * sa + ch * sc;
            uint8_t *o = out + a * sa + ch * sc;
            const int64_t m = mult[ch], k = konst[ch], s = shift[ch];
            for (int64_t b = 0; b < inner; ++b) o[b] = requant_one(x[b], m, k, s, zp, lo, hi);
        }
    return 0;
}
"""


def declare(lib: ctypes.CDLL) -> None:
    """Set the argument types of the library's ``agn_requant``."""
    i64, i32, ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    lib.agn_requant.argtypes = [ptr, ptr, i64, i64, i64, i64, i64, i64, ptr, ptr, ptr, i32, i32,
                                i32]
    lib.agn_requant.restype = i32


def constants(mult: np.ndarray, shift: np.ndarray, bias: np.ndarray | None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per channel (mult, bias * mult + 2^(shift - 1), shift) as int64 tensors."""
    m = np.asarray(mult, np.int64)
    s = np.asarray(shift, np.int64)
    konst = (1 << (s - 1)) + (m * np.asarray(bias, np.int64) if bias is not None else 0)
    return (torch.from_numpy(np.ascontiguousarray(m)), torch.from_numpy(konst),
            torch.from_numpy(np.ascontiguousarray(s)))


def _block(acc: torch.Tensor) -> tuple[int, int, int, int, int, int] | None:
    """(outer, c, inner, sa, sc, sb) of a dense (N, C) or (N, C, H, W) tensor, else None."""
    if acc.dim() == 2 and acc.is_contiguous():
        n, c = acc.shape
        return n, c, 1, c, 1, 0
    if acc.dim() == 4:
        n, c, h, w = acc.shape
        if acc.is_contiguous():
            return n, c, h * w, c * h * w, h * w, 1
        if acc.is_contiguous(memory_format=torch.channels_last):
            return n * h * w, c, 1, c, 1, 0
    return None


def requant(lib: ctypes.CDLL, acc: torch.Tensor, consts: tuple[torch.Tensor, ...], zp: int,
            lo: int, hi: int) -> torch.Tensor | None:
    """uint8 activations of int32 accumulators ``acc`` (same shape and memory format), or None
    when ``acc`` is not an int32 tensor in a layout the kernel walks (the caller falls back)."""
    block = _block(acc) if acc.dtype == torch.int32 else None
    if block is None:
        return None
    mult, konst, shift = consts
    assert mult.numel() == konst.numel() == shift.numel() == acc.shape[1]
    out = torch.empty_like(acc, dtype=torch.uint8)
    rc = lib.agn_requant(acc.data_ptr(), out.data_ptr(), *block, mult.data_ptr(),
                         konst.data_ptr(), shift.data_ptr(), zp, lo, hi)
    return out if rc == 0 else None


def self_check(lib: ctypes.CDLL) -> str:
    """'' when ``agn_requant`` matches int64 NumPy arithmetic on extreme and random operands in
    every layout it walks (few and many channels, whole periods and a remainder)."""
    rng = np.random.default_rng(11)
    for c in (5, 70):
        mult = rng.integers(1, 2**31, c)
        shift = rng.integers(1, 63, c)
        bias = rng.integers(-2**31, 2**31, c)
        mult[:5], shift[:5], bias[:5] = [1, 2**31 - 1, 12345, 2**30, 77], [1, 62, 17, 31, 40], \
            [0, -2**31, 2**31 - 1, -5, 3]
        consts = constants(mult, shift, bias)
        acc = np.where(rng.random((3, c, 3, 7)) < 0.5, rng.integers(-2**31, 2**31, (3, c, 3, 7)),
                       rng.integers(-2**12, 2**12, (3, c, 3, 7)))
        acc[0, :, 0, :2] = [[-2**31, 2**31 - 1]] * c
        for layout in ("nchw", "cl", "2d"):
            a = acc.transpose(0, 2, 3, 1).reshape(63, c)[:23] if layout == "2d" else acc
            t = torch.from_numpy(a.astype(np.int32))
            if layout == "cl":
                t = t.contiguous(memory_format=torch.channels_last)
            got = requant(lib, t, consts, 9, 3, 250)
            view = (1, -1) + (1,) * (a.ndim - 2)
            k = consts[1].numpy().reshape(view)
            want = np.clip(((a * mult.reshape(view) + k) >> shift.reshape(view)) + 9, 3, 250)
            if got is None or not np.array_equal(got.numpy(), want):
                return f"requantisation of a {layout} block of {c} channels differs"
    return ""
