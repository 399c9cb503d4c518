"""The compiled feature kernel: activation features in channels-last, built in one C pass.

The same library holds the gather path's kernel (:mod:`agn.sim.cgather`) and the torch executor's
requantisation (:mod:`agn.sim.crequant`), checked with it.

The C source below is compiled on first use by the system compiler (``$CC``, else cc, gcc or
clang) into ``$XDG_CACHE_HOME/agn-toolkit/ckernels`` (or ``~/.cache/agn-toolkit/ckernels``),
named by a hash of the source, the flags, the compiler's version and the CPU (the library is built
for this CPU), written atomically, loaded with ctypes and checked against the torch
implementation of :mod:`agn.sim.features` on every feature form before it is used. When no
compiler is found, compilation fails or the check disagrees, :func:`library` returns None with the
reason in :func:`status` and the engine builds its features with torch ops (and sums its
gather tables with embedding_bag) instead.
``AGN_FEATURE_KERNEL=torch`` forces the torch fallback, ``AGN_FEATURE_KERNEL=c`` makes a missing
compiled kernel an error (tests).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from agn.sim import cgather, crequant, features
from hwlib import cmodel
from hwlib.fileio import atomic_path

ENV = "AGN_FEATURE_KERNEL"
MODES = ("auto", "c", "torch")
FLAGS = ("-std=gnu99", "-O3", "-fno-strict-aliasing", "-fPIC", "-shared", "-w")
NATIVE = "-march=native"
CACHE_VERSION = "1"
TIMEOUT_S = 120
_KINDS = {"bits": 0, "table": 1, "identity": 2}
SOURCE = r"""
/* Activation features of the term-split kernels, channels-last, in one pass (agn.sim.ckernel).
 *
 * Input: uint8 activations x[n, g, c, y, x] at any element strides (channels c < cs of group g).
 * Output: uint8 out[n, yp, xp, g, r, c] for padded rows yp < h + 2 py, columns xp < w + 2 px,
 * groups g < groups, terms r < nops, channels c < gc (channels cs..gc-1 hold chan_fill, padded
 * pixels hold fill in every channel), then feature r applied; out needs SLACK spare bytes.
 *
 * A feature is ((v & mask) ^ flip) << shift, plus v when plus_x, plus konst where v != 0, all
 * modulo 256 (exact: the caller checked that the feature lies in 0..255), or lut[r * 256 + v].
 *
 * Per padded row: the activations are gathered into a channels-last row, each feature is computed
 * over the whole row in wide vectors, and the feature rows are interleaved into the output.
 * Vectors are stored whole even past the end of what they hold: the spill lands in the next
 * slot, which is written afterwards (addresses only increase), or in the slack at the end.
 */
#include <stdint.h>
#include <string.h>
#if defined(__AVX512VBMI__)
#include <immintrin.h>
#endif

#define SLACK 64

enum { BITS = 0, TABLE = 1, IDENTITY = 2 };

typedef struct {
    int32_t kind, mask, flip, shift, plus_x, konst;
} op_t;

typedef uint8_t v64 __attribute__((vector_size(64)));
typedef uint16_t w32 __attribute__((vector_size(64)));
typedef uint8_t v32 __attribute__((vector_size(32)));
typedef uint8_t v16 __attribute__((vector_size(16)));

/* dst[0:len] = feature op of src[0:len]; both have SLACK spare bytes. */
static void feature_row(const uint8_t *src, int64_t len, op_t op, const uint8_t *lut,
                        uint8_t *dst) {
    if (op.kind == TABLE) {
        for (int64_t i = 0; i < len; ++i) dst[i] = lut[src[i]];
        return;
    }
    if (op.kind == IDENTITY) {
        memcpy(dst, src, (size_t)len);
        return;
    }
    /* a byte shift as a 16-bit shift, then the bits carried into the next byte cleared */
    const uint8_t keep = (uint8_t)(0xFF << op.shift);
    const uint8_t mask = (uint8_t)op.mask, flip = (uint8_t)op.flip, konst = (uint8_t)op.konst;
    for (int64_t i = 0; i < len; i += 64) {
        v64 v, f;
        memcpy(&v, src + i, 64);
        f = (v & mask) ^ flip;
        f = (v64)((w32)f << op.shift) & keep;
        if (op.plus_x) f += v;
        if (op.konst) f += (v64)(v != 0) & konst;
        memcpy(dst + i, &f, 64);
    }
}

/* out[p, g, r, 0:gc] = rows[r][p, g, 0:gc] for p < npix, copying W bytes at a time. */
#define DEFINE_INTERLEAVE(W, T)                                                              \
    static uint8_t *interleave_##W(uint8_t *const *rows, int64_t npix, int groups, int gc,    \
                                   int nops, uint8_t *out) {                                 \
        const int64_t cp = (int64_t)groups * gc;                                             \
        for (int64_t p = 0; p < npix; ++p)                                                   \
            for (int g = 0; g < groups; ++g) {                                               \
                const int64_t at = p * cp + (int64_t)g * gc;                                 \
                for (int r = 0; r < nops; ++r, out += gc)                                    \
                    for (int c = 0; c < gc; c += W) {                                        \
                        T t;                                                                 \
                        memcpy(&t, rows[r] + at + c, W);                                     \
                        memcpy(out + c, &t, W);                                              \
                    }                                                                        \
            }                                                                                \
        return out;                                                                          \
    }

DEFINE_INTERLEAVE(4, uint32_t)
DEFINE_INTERLEAVE(8, uint64_t)
DEFINE_INTERLEAVE(16, v16)
DEFINE_INTERLEAVE(32, v32)
DEFINE_INTERLEAVE(64, v64)

/* Transpose an 8 x 8 byte block held in 8 words (little-endian: byte j of word i is (i, j)). */
static void transpose8(uint64_t *b) {
    for (int k = 0; k < 8; k += 2) {
        uint64_t t = ((b[k] >> 8) ^ b[k + 1]) & 0x00FF00FF00FF00FFull;
        b[k + 1] ^= t, b[k] ^= t << 8;
    }
    for (int k = 0; k < 8; k += (k % 4 == 1) ? 3 : 1) {
        uint64_t t = ((b[k] >> 16) ^ b[k + 2]) & 0x0000FFFF0000FFFFull;
        b[k + 2] ^= t, b[k] ^= t << 16;
    }
    for (int k = 0; k < 4; ++k) {
        uint64_t t = ((b[k] >> 32) ^ b[k + 4]) & 0x00000000FFFFFFFFull;
        b[k + 4] ^= t, b[k] ^= t << 32;
    }
}

/* dst[j * cp + c] = src[c * sc + j * sw] for j < w, c < cs; chan_fill for cs <= c < gc. */
static void gather(const uint8_t *src, int64_t sc, int64_t sw, int cs, int gc, int64_t w,
                   int64_t cp, int chan_fill, uint8_t *dst) {
    int c0 = 0;
    if (sc == 1) {  /* channels-last input: runs of cs bytes */
        for (int64_t j = 0; j < w; ++j) memcpy(dst + j * cp, src + j * sw, (size_t)cs);
        c0 = cs;
    } else if (sw == 1) {  /* NCHW rows: 8 x 8 blocks */
        const int64_t w8 = w - w % 8;
        for (; c0 + 8 <= cs; c0 += 8) {
            for (int64_t j = 0; j < w8; j += 8) {
                uint64_t b[8];
                for (int k = 0; k < 8; ++k) memcpy(&b[k], src + (c0 + k) * sc + j, 8);
                transpose8(b);
                for (int k = 0; k < 8; ++k) memcpy(dst + (j + k) * cp + c0, &b[k], 8);
            }
            for (int k = 0; k < 8; ++k)
                for (int64_t j = w8; j < w; ++j) dst[j * cp + c0 + k] = src[(c0 + k) * sc + j];
        }
    }
    for (int c = c0; c < gc; ++c) {
        uint8_t *d = dst + c;
        if (c >= cs) {
            for (int64_t j = 0; j < w; ++j) d[j * cp] = (uint8_t)chan_fill;
        } else {
            const uint8_t *s = src + c * sc;
            for (int64_t j = 0; j < w; ++j) d[j * cp] = s[j * sw];
        }
    }
}

/* p[i] = (int32_t)(float)p[i] in place: the float holds an integer of magnitude below 2^31. */
void agn_float_to_int32(void *p, int64_t n) {
    const float *f = (const float *)p;
    int32_t *d = (int32_t *)p;
    for (int64_t i = 0; i < n; ++i) d[i] = (int32_t)f[i];
}

/* v[idx[b]] for every lane b (idx < 64). */
static inline v64 shuffle64(v64 v, v64 idx) {
#if defined(__AVX512VBMI__)
    return (v64)_mm512_permutexvar_epi8((__m512i)idx, (__m512i)v);
#elif defined(__GNUC__) && !defined(__clang__)
    return __builtin_shuffle(v, idx);
#else
    v64 s;
    for (int b = 0; b < 64; ++b) s[b] = v[idx[b]];
    return s;
#endif
}

/* Per-lane form of the bit features over one pixel's output, in segments of 64 bytes. */
typedef struct {
    v64 idx, mask, flip, mul, plus, konst;
} lanes_t;

#define MAX_SEGMENTS 64

/* Lanes of every segment; returns the number of segments, 0 when the form does not apply. */
static int pixel_lanes(const op_t *ops, int nops, int groups, int gc, lanes_t *seg,
                       int *any_mul) {
    const int64_t cp = (int64_t)groups * gc, per_pixel = cp * nops;
    const int nseg = (int)((per_pixel + 63) / 64);
    if (cp > 64 || nseg > MAX_SEGMENTS) return 0;
    for (int r = 0; r < nops; ++r)
        if (ops[r].kind == TABLE) return 0;
    *any_mul = 0;
    memset(seg, 0, sizeof(lanes_t) * (size_t)nseg);
    for (int64_t b = 0; b < per_pixel; ++b) {
        const int g = (int)(b / (nops * gc)), r = (int)(b / gc % nops), c = (int)(b % gc);
        lanes_t *l = &seg[b / 64];
        const int lane = (int)(b % 64);
        const op_t op = ops[r];
        l->idx[lane] = (uint8_t)(g * gc + c);
        if (op.kind == IDENTITY) {
            l->mask[lane] = 0xFF, l->mul[lane] = 1;
            continue;
        }
        l->mask[lane] = (uint8_t)op.mask, l->flip[lane] = (uint8_t)op.flip;
        l->mul[lane] = (uint8_t)(1u << op.shift), l->plus[lane] = op.plus_x ? 0xFF : 0;
        l->konst[lane] = (uint8_t)op.konst;
        *any_mul |= op.shift != 0;
    }
    return nseg;
}

/* out[p, :] = the features of pixel p of row, every lane at once. */
static uint8_t *pixels_shuffled(const uint8_t *row, int64_t npix, int64_t cp, int64_t per_pixel,
                                const lanes_t *seg, int nseg, int any_mul, uint8_t *out) {
    for (int64_t p = 0; p < npix; ++p, out += per_pixel) {
        v64 v;
        memcpy(&v, row + p * cp, 64);
        for (int j = 0; j < nseg; ++j) {
            const lanes_t *l = &seg[j];
            v64 s = shuffle64(v, l->idx);
            v64 f = (s & l->mask) ^ l->flip;
            if (any_mul) f *= l->mul;
            f += (s & l->plus) + ((v64)(s != 0) & l->konst);
            memcpy(out + 64 * j, &f, 64);
        }
    }
    return out;
}

int agn_feature_slack(void) { return SLACK; }

/* Returns 0, or -1 for arguments it does not handle. ``work`` holds (nops + 1) * (wp * groups *
 * gc + SLACK) bytes. */
int agn_features(const uint8_t *x, int64_t sn, int64_t sg, int64_t sc, int64_t sh, int64_t sw,
                 int64_t n, int groups, int cs, int64_t h, int64_t w, int gc, int py, int px,
                 int fill, int chan_fill, int nops, const int32_t *ops_raw, const uint8_t *luts,
                 int shuffled, uint8_t *out, uint8_t *work) {
    if (gc < cs || gc < 1 || nops < 1 || nops > 64 || groups < 1) return -1;
    const op_t *ops = (const op_t *)ops_raw;
    const int64_t hp = h + 2 * py, wp = w + 2 * px, cp = (int64_t)groups * gc;
    const int64_t len = wp * cp, stride = len + SLACK;
    uint8_t *row = work, *rows[64];
    for (int r = 0; r < nops; ++r) rows[r] = work + (r + 1) * stride;
    uint8_t *(*interleave)(uint8_t *const *, int64_t, int, int, int, uint8_t *) =
        gc == 4 ? interleave_4 : gc == 8 ? interleave_8 : gc % 64 == 0 ? interleave_64
        : gc % 32 == 0 ? interleave_32 : gc % 16 == 0 || gc < 16 ? interleave_16
        : gc < 32 ? interleave_32 : interleave_64;
    const int direct = nops == 1 && ops[0].kind == IDENTITY;  /* the row is the output */
    lanes_t seg[MAX_SEGMENTS];
    int any_mul = 0;
    const int nseg = direct || !shuffled ? 0 : pixel_lanes(ops, nops, groups, gc, seg, &any_mul);
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t yp = 0; yp < hp; ++yp) {
            const int64_t y = yp - py;
            if (direct) row = out;
            if (y < 0 || y >= h) {
                memset(row, fill, (size_t)len);
            } else {
                memset(row, fill, (size_t)(px * cp));
                memset(row + (px + w) * cp, fill, (size_t)(px * cp));
                for (int g = 0; g < groups; ++g)
                    gather(x + i * sn + g * sg + y * sh, sc, sw, cs, gc, w, cp, chan_fill,
                           row + px * cp + (int64_t)g * gc);
            }
            if (direct) {
                out += len;
                continue;
            }
            if (nseg) {
                out = pixels_shuffled(row, wp, cp, cp * nops, seg, nseg, any_mul, out);
                continue;
            }
            for (int r = 0; r < nops; ++r) feature_row(row, len, ops[r], luts + 256 * r, rows[r]);
            out = interleave(rows, wp, groups, gc, nops, out);
        }
    }
    return 0;
}
""" + cgather.SOURCE + crequant.SOURCE


class FeatureKernelError(RuntimeError):
    """The compiled feature kernel was required (``AGN_FEATURE_KERNEL=c``) but is unavailable."""


@dataclass(frozen=True)
class PackedOps:
    """FeatureOps in the kernel's layout: int32 (R + 1, 6) parameters, uint8 (R + 1, 256) tables."""

    params: torch.Tensor
    luts: torch.Tensor


@dataclass
class _State:
    lib: ctypes.CDLL | None = None
    status: str = "not loaded yet"
    loaded: bool = False


_STATE = _State()
_LOCK = threading.Lock()
_WORKSPACE = threading.local()


def cache_dir() -> Path:
    """Directory of the compiled kernels."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "agn-toolkit" / "ckernels"


def mode() -> str:
    """``$AGN_FEATURE_KERNEL``: "auto" (default), "c" (compiled kernel required) or "torch"."""
    value = os.environ.get(ENV, "auto") or "auto"
    if value not in MODES:
        raise ValueError(f"${ENV}: expected one of {MODES}, got {value!r}")
    return value


def pack(ops: list[features.FeatureOp]) -> PackedOps | None:
    """``ops`` for the kernel, or None for more than 64 or a table that is not 256 uint8 or less."""
    if len(ops) > 64:
        return None
    params = torch.zeros((len(ops), 6), dtype=torch.int32)
    luts = torch.zeros((len(ops), 256), dtype=torch.uint8)
    for r, op in enumerate(ops):
        if op.lut is not None:
            if op.lut.dtype != torch.uint8 or op.lut.numel() > 256:
                return None
            params[r, 0] = _KINDS["table"]
            luts[r, :op.lut.numel()] = op.lut
        elif op.identity:
            params[r, 0] = _KINDS["identity"]
        else:
            params[r] = torch.tensor([_KINDS["bits"], op.mask, op.flip, op.shift, op.plus_x,
                                      op.const & 0xFF], dtype=torch.int32)
    return PackedOps(params, luts)


def build(x: torch.Tensor, packed: PackedOps, group_channels: int, padding: tuple[int, int],
          fill: int, chan_fill: int, reuse: bool = False) -> torch.Tensor:
    """Features (N, G * (R + 1) * Cg', Hp, Wp) in channels-last memory, like :func:`features.build`.

    Args:
        x: uint8 (N, G, Cs, H, W) activations at any strides (Cs <= Cg' channels per group).
        packed: the features (:func:`pack`).
        group_channels: Cg'; channels Cs..Cg'-1 hold ``chan_fill`` before the features.
        padding: (py, px) border of pixels holding ``fill`` before the features.
        fill: value of padded pixels.
        chan_fill: value of the extra channels.
        reuse: write into this thread's feature workspace (no fresh pages to fault in); the
            result is then only valid until the next ``build(..., reuse=True)`` in this thread.
    """
    lib = library()
    assert lib is not None, "ckernel.build called without a compiled kernel"
    return _run(lib, x, packed, group_channels, padding, fill, chan_fill, reuse=reuse)


def release_workspace() -> None:
    """Drop this thread's feature workspace (the memory ``build(..., reuse=True)`` keeps)."""
    _WORKSPACE.__dict__.pop("buffer", None)


def _workspace(nbytes: int) -> torch.Tensor:
    buf = getattr(_WORKSPACE, "buffer", None)
    if buf is None or buf.numel() < nbytes:
        buf = torch.empty(nbytes, dtype=torch.uint8)
        _WORKSPACE.buffer = buf
    return buf[:nbytes]


def _run(lib: ctypes.CDLL, x: torch.Tensor, packed: PackedOps, group_channels: int,
         padding: tuple[int, int], fill: int, chan_fill: int,
         shuffled: bool = True, reuse: bool = False) -> torch.Tensor:
    n, groups, cs, h, w = x.shape
    py, px = padding
    hp, wp, nops = h + 2 * py, w + 2 * px, packed.params.shape[0]
    channels = groups * nops * group_channels
    size = n * hp * wp * channels
    buf = _workspace(size + _SLACK) if reuse else torch.empty(size + _SLACK, dtype=torch.uint8)
    work = torch.empty((nops + 1) * (wp * groups * group_channels + _SLACK), dtype=torch.uint8)
    sn, sg, sc, sh, sw = x.stride()
    rc = lib.agn_features(x.data_ptr(), sn, sg, sc, sh, sw, n, groups, cs, h, w,
                          group_channels, py, px, fill, chan_fill, nops,
                          packed.params.data_ptr(), packed.luts.data_ptr(), int(shuffled),
                          buf.data_ptr(), work.data_ptr())
    if rc != 0:
        raise ValueError(f"feature kernel: refused shape {tuple(x.shape)} with Cg' "
                         f"{group_channels}")
    return buf[:size].view(n, hp, wp, channels).permute(0, 3, 1, 2)


def to_int32(y: torch.Tensor) -> torch.Tensor:
    """Float32 ``y`` holding integers below 2^31 as int32, converted in place when it is dense."""
    lib = library()
    dense = y.is_contiguous() or y.is_contiguous(memory_format=torch.channels_last)
    if lib is None or y.dtype != torch.float32 or not dense:
        return y.to(torch.int32)
    lib.agn_float_to_int32(y.data_ptr(), y.numel())
    return y.view(torch.int32)


def available() -> bool:
    """True when the compiled kernel is loaded (and checked) and ``$AGN_FEATURE_KERNEL`` allows it.

    Raises:
        FeatureKernelError: ``$AGN_FEATURE_KERNEL=c`` and the kernel is unavailable.
    """
    wanted = mode()
    if wanted == "torch":
        return False
    ok = library() is not None
    if wanted == "c" and not ok:
        raise FeatureKernelError(f"${ENV}=c but the compiled feature kernel is unavailable: "
                                 f"{status()}")
    return ok


def status() -> str:
    """One line on the compiled kernel: where it was loaded from, or why it is not used."""
    return _STATE.status


def library() -> ctypes.CDLL | None:
    """The compiled kernel, compiled and checked on first call (once per process), or None."""
    if not _STATE.loaded:
        with _LOCK:
            if not _STATE.loaded:
                _STATE.lib, _STATE.status = _load()
                _STATE.loaded = True
    return _STATE.lib


def reset() -> None:
    """Forget the loaded kernel so that the next call compiles or loads it again (tests)."""
    with _LOCK:
        _STATE.lib, _STATE.status, _STATE.loaded = None, "not loaded yet", False


_SLACK = 64


def _load() -> tuple[ctypes.CDLL | None, str]:
    try:
        path = _compiled()
        lib = ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError, FeatureKernelError) as exc:
        return None, f"torch fallback: {exc}"
    fn = lib.agn_features
    i64, i32, ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    fn.argtypes = [ptr, i64, i64, i64, i64, i64, i64, i32, i32, i64, i64, i32, i32, i32, i32,
                   i32, i32, ptr, ptr, i32, ptr, ptr]
    fn.restype = i32
    lib.agn_float_to_int32.argtypes = [ptr, i64]
    lib.agn_float_to_int32.restype = None
    cgather.declare(lib)
    crequant.declare(lib)
    if lib.agn_feature_slack() != _SLACK:
        return None, f"torch fallback: {path} has slack {lib.agn_feature_slack()}, not {_SLACK}"
    problem = _self_check(lib) or cgather.self_check(lib) or crequant.self_check(lib)
    if problem:
        return None, f"torch fallback: {path} disagrees with the torch features ({problem})"
    return lib, f"compiled kernel {path}"


def _compiled() -> Path:
    """Path of the compiled library, compiling it into the cache when it is not there yet."""
    try:
        cc = cmodel.compiler()
    except cmodel.CModelError as exc:
        raise FeatureKernelError(str(exc)) from exc
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False,
                             timeout=TIMEOUT_S).stdout
    errors = []
    for flags in ((*FLAGS, NATIVE), FLAGS):
        key = hashlib.sha256("\0".join([CACHE_VERSION, SOURCE, cc, version, *flags,
                                        _cpu()]).encode()).hexdigest()[:24]
        path = cache_dir() / f"features-{key}.so"
        if path.is_file():
            return path
        error = _compile(cc, flags, path)
        if error is None:
            return path
        errors.append(f"{' '.join(flags)}: {error}")
    raise FeatureKernelError(f"{cc} does not compile the feature kernel: {'; '.join(errors)}")


def _compile(cc: str, flags: tuple[str, ...], path: Path) -> str | None:
    """Compile SOURCE into ``path`` atomically; the compiler's complaint, or None on success."""
    try:
        with atomic_path(path) as tmp:
            src = tmp.with_suffix(".c")
            try:
                src.write_text(SOURCE)
                built = subprocess.run([cc, *flags, "-o", str(tmp), str(src)],
                                       capture_output=True, text=True, check=False,
                                       timeout=TIMEOUT_S)
            finally:
                src.unlink(missing_ok=True)
            if built.returncode != 0:
                raise FeatureKernelError(built.stderr.strip()[:500] or f"exit {built.returncode}")
    except FeatureKernelError as exc:
        return str(exc)
    return None


def _cpu() -> str:
    """What ``-march=native`` depends on: the CPU model and flags (else the platform's name)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    keep = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags", "Features")]
    return "\n".join(dict.fromkeys(keep)) or f"{platform.machine()} {platform.processor()}"


def _self_check(lib: ctypes.CDLL) -> str:
    """'' when the kernel builds the same features as :func:`features.build` on every form."""
    gen = torch.Generator().manual_seed(3)
    lut = torch.randint(0, 256, (256,), generator=gen, dtype=torch.uint8)
    ops = [features.FeatureOp(identity=True), features.FeatureOp(lut=lut),
           features.FeatureOp(mask=0x5A, flip=0x5A, shift=1, plus_x=1, const=-3),
           features.FeatureOp(mask=0x0F, shift=3, const=17), features.FeatureOp(plus_x=1),
           features.FeatureOp(mask=0xF0, flip=0x30)]
    identity, bits = ops[:1], ops[:1] + ops[2:]
    # (groups, channels per group, Cg', padding, channels-last input, ops): every vector width,
    # the 8 x 8 blocks with a remainder, the identity written straight into the output
    cases = [(1, 3, 4, (1, 1), False, ops), (2, 5, 8, (0, 2), False, ops),
             (1, 16, 16, (1, 1), True, ops), (1, 20, 20, (2, 1), False, ops),
             (1, 70, 72, (1, 0), True, ops), (3, 2, 2, (0, 0), False, ops),
             (2, 11, 12, (1, 1), False, identity), (1, 16, 16, (0, 0), True, identity),
             (1, 3, 4, (1, 1), False, bits), (2, 6, 8, (0, 1), True, bits),
             (1, 16, 16, (1, 1), False, bits), (1, 64, 64, (1, 0), False, bits[:3]),
             (3, 2, 2, (2, 0), False, bits)]
    for i, (groups, cs, gc, pad, cl, case_ops) in enumerate(cases):
        packed = pack(case_ops)
        assert packed is not None
        x = torch.randint(0, 256, (2, groups * cs, 5, 19), generator=gen, dtype=torch.uint8)
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        parts = x.reshape(2, groups, cs, 5, 19)
        wide = torch.nn.functional.pad(parts, (0, 0, 0, 0, 0, gc - cs), value=0)
        x_cl = features.padded_channels_last(wide.reshape(2, groups * gc, 5, 19), pad, 9)
        ref = features.build(x_cl, case_ops, groups, 0, torch.uint8)
        for shuffled in (False, True):
            got = _run(lib, parts, packed, gc, pad, 9, 0, shuffled)
            if not torch.equal(got, ref):
                return (f"case {i}{' shuffled' if shuffled else ''}: {int((got != ref).sum())} "
                        f"of {ref.numel()} features differ")
    ints = torch.randint(-2**24, 2**24, (3, 5, 7), generator=gen, dtype=torch.int32)
    floats = ints.float().permute(0, 2, 1)
    lib.agn_float_to_int32(floats.data_ptr(), floats.numel())
    if not torch.equal(floats.view(torch.int32), ints.permute(0, 2, 1)):
        return "float to int32 conversion differs"
    return ""
