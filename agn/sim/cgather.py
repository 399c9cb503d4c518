"""The compiled gather kernel: sums of lookup-table rows, one row per tap, for the gather path.

Its C source is compiled with the feature kernel's (:mod:`agn.sim.ckernel`, which loads the
library and checks this kernel with :func:`self_check` before it is used); the engine falls back
to ``torch.nn.functional.embedding_bag`` when the library is unavailable. Both sum the same
float32 table rows, integers whose every partial sum the planner proved below 2^24, so both are
exact whatever the order of the additions.
"""
from __future__ import annotations

import ctypes

import torch

SOURCE = r"""
/* Gather path (agn.sim.cgather): out[p, 0:og] (+)= sum_t table[toff[t] + x[base(p) + xoff[t]] *
 * ld + 0:og] for output pixels p = (i, yo, xo), base(p) = ((i * hp + yo * sy) * wp + xo * sx) *
 * c, over uint8 padded channels-last activations x (n, hp, wp, c); table rows hold ld >= og
 * floats. Accumulators stay in registers over all taps of a pixel, in blocks of up to four
 * 16-float vectors; the last vector's spare lanes sum whatever follows the og columns (the
 * table has GATHER_SLACK spare floats after its last row) and are not stored. */
#define GATHER_SLACK 16
typedef float f16 __attribute__((vector_size(64)));

static inline void add_rows(const uint8_t *px, int ntaps, const int64_t *xoff,
                            const int64_t *toff, const float *table, int64_t ld, int nv, f16 *a) {
    for (int t = 0; t < ntaps; ++t) {
        const float *r = table + toff[t] + (int64_t)px[xoff[t]] * ld;
        f16 q;
        switch (nv) {
        case 4: memcpy(&q, r + 48, 64); a[3] += q; /* fall through */
        case 3: memcpy(&q, r + 32, 64); a[2] += q; /* fall through */
        case 2: memcpy(&q, r + 16, 64); a[1] += q; /* fall through */
        default: memcpy(&q, r, 64); a[0] += q;
        }
    }
}

int agn_gather_slack(void) { return GATHER_SLACK; }

int agn_gather(const uint8_t *x, int64_t n, int64_t hp, int64_t wp, int64_t c, int64_t ho,
               int64_t wo, int sy, int sx, int ntaps, const int64_t *xoff, const int64_t *toff,
               const float *table, int64_t ld, int og, int accumulate, float *out,
               int64_t out_stride) {
    if (ntaps < 1 || og < 1 || og > ld || sy < 1 || sx < 1) return -1;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t yo = 0; yo < ho; ++yo)
            for (int64_t xo = 0; xo < wo; ++xo) {
                const uint8_t *px = x + ((i * hp + yo * sy) * wp + xo * sx) * c;
                float *o = out + ((i * ho + yo) * wo + xo) * out_stride;
                for (int c0 = 0; c0 < og; c0 += 64) {
                    const int left = og - c0, nv = left >= 64 ? 4 : (left + 15) / 16;
                    f16 a[4] = {0};
                    add_rows(px, ntaps, xoff, toff, table + c0, ld, nv, a);
                    for (int v = 0; v < nv; ++v) {
                        const int k = left - 16 * v >= 16 ? 16 : left - 16 * v;
                        f16 q = a[v], p = {0};
                        if (accumulate) {
                            memcpy(&p, o + c0 + 16 * v, (size_t)k * 4);
                            q += p;
                        }
                        memcpy(o + c0 + 16 * v, &q, (size_t)k * 4);
                    }
                }
            }
    return 0;
}
"""


SLACK = 16  # floats a table keeps after its last row (GATHER_SLACK)


def declare(lib: ctypes.CDLL) -> None:
    """Set the argument types of the library's ``agn_gather``."""
    i64, i32, ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    lib.agn_gather.argtypes = [ptr, i64, i64, i64, i64, i64, i64, i32, i32, i32, ptr, ptr, ptr,
                               i64, i32, i32, ptr, i64]
    lib.agn_gather.restype = i32
    lib.agn_gather_slack.restype = i32


def with_slack(table: torch.Tensor) -> torch.Tensor:
    """``table`` copied into storage with SLACK zero elements after it (what the kernel reads
    past a row's last columns)."""
    buf = torch.zeros(table.numel() + SLACK, dtype=table.dtype)
    buf[:table.numel()].copy_(table.reshape(-1))
    return buf[:table.numel()].view(table.shape)


def tap_offsets(kernel: tuple[int, int], group_channels: int, width: int, channels: int,
                n_x: int, ld: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per tap of a group, in (ky, kx, c) order: its byte offset in the activations from a
    pixel's first byte (add the group's first channel), and the first float of its table row
    block (rows of ``ld`` floats, ``n_x`` rows per tap)."""
    ky = torch.arange(kernel[0]).view(-1, 1, 1)
    kx = torch.arange(kernel[1]).view(1, -1, 1)
    ci = torch.arange(group_channels).view(1, 1, -1)
    xoff = ((ky * width + kx) * channels + ci).reshape(-1)
    return xoff, torch.arange(len(xoff), dtype=torch.int64) * (n_x * ld)


def gather(lib: ctypes.CDLL, x: torch.Tensor, out_shape: tuple[int, int, int],
           stride: tuple[int, int], xoff: torch.Tensor, toff: torch.Tensor, rows: torch.Tensor,
           out: torch.Tensor, accumulate: bool) -> None:
    """Sum table rows into ``out``: ``out[p] (+)= sum_t rows[toff[t] / ld + x[p, tap t]]``.

    Args:
        x: uint8 (N, Hp, Wp, C) contiguous padded activations, minus the domain's low end.
        out_shape: (N, Ho, Wo).
        stride: (sy, sx).
        xoff, toff: int64 offsets of the taps summed (:func:`tap_offsets`, with
            ``ld = rows.stride(0)``), any subset of the taps.
        rows: float32 (rows, og) view of a table made by :func:`with_slack` (a column range
            of it is fine).
        out: float32 (N * Ho * Wo, og) view, unit column stride.
        accumulate: add to ``out`` instead of overwriting it.
    """
    n, ho, wo = out_shape
    _, hp, wp, c = x.shape
    ld, og = rows.stride(0), rows.shape[1]
    assert x.dtype == torch.uint8 and x.is_contiguous() and rows.stride(1) == 1
    assert xoff.is_contiguous() and toff.is_contiguous() and len(xoff) == len(toff)
    assert rows.dtype == out.dtype == torch.float32 and out.stride(1) == 1
    read_end = rows.storage_offset() + (rows.shape[0] - 1) * ld + 16 * (-(-og // 16))
    assert rows.untyped_storage().nbytes() >= 4 * read_end, "table without its slack"
    rc = lib.agn_gather(x.data_ptr(), n, hp, wp, c, ho, wo, stride[0], stride[1], xoff.numel(),
                        xoff.data_ptr(), toff.data_ptr(), rows.data_ptr(), ld, og,
                        int(accumulate), out.data_ptr(), out.stride(0))
    if rc != 0:
        raise ValueError(f"gather kernel: refused {xoff.numel()} taps, {og} of {ld} columns, "
                         f"stride {stride}")


def self_check(lib: ctypes.CDLL) -> str:
    """'' when ``agn_gather`` sums the same rows as a brute-force loop (whole 64-column blocks,
    16-column vectors, partial vectors, a column range of wider rows; overwrite and
    accumulate)."""
    if lib.agn_gather_slack() != SLACK:
        return f"gather slack {lib.agn_gather_slack()}, not {SLACK}"
    gen = torch.Generator().manual_seed(5)
    for og, c0, c1 in ((1, 0, 1), (3, 0, 3), (16, 0, 16), (20, 0, 20), (64, 0, 64), (83, 0, 83),
                       (48, 16, 32), (40, 16, 37)):
        n, hp, wp, c, n_x, taps = 2, 5, 6, 3, 7, 4
        x = torch.randint(0, n_x, (n, hp, wp, c), generator=gen, dtype=torch.uint8)
        table = with_slack(torch.randint(-999, 1000, (taps * n_x, og), generator=gen).float())
        rows = table[:, c0:c1]
        xoff = torch.tensor([0, 2, c * wp + 1, c * wp + c + 2], dtype=torch.int64)
        toff = torch.arange(taps, dtype=torch.int64) * (n_x * og)
        ho, wo = 4, 2  # stride (1, 2) over 2 x 2 windows
        base = torch.randint(-9, 10, (n * ho * wo, c1 - c0 + 2), generator=gen).float()
        flat = x.reshape(-1).long()
        for accumulate in (False, True):
            got = base.clone()
            gather(lib, x, (n, ho, wo), (1, 2), xoff, toff, rows, got[:, 1:-1], accumulate)
            want = base.clone()
            for p in range(n * ho * wo):
                i, yo, xo = p // (ho * wo), p // wo % ho, p % wo
                start = ((i * hp + yo) * wp + 2 * xo) * c
                s = sum(rows[t * n_x + int(flat[start + int(xoff[t])])] for t in range(taps))
                want[p, 1:-1] = s + (want[p, 1:-1] if accumulate else 0)
            if not torch.equal(got, want):
                return (f"gather of columns {c0}..{c1} of {og}"
                        f"{' accumulated' if accumulate else ''} differs")
    return ""
