"""Activation features of the term-split kernels, built in the channels-last layout a conv wants.

A feature ``f(x)`` is recognised as
``(((x & mask) ^ flip) << shift) + plus_x * x + const * [x != 0]``
(MARLIN's bit masks and compensation, BAM rows, truncation, their complements) and then computed
with a few uint8 ops, modulo 256, which is exact because the feature itself lies in 0..255; any
other feature is a table lookup. Terms are laid out per pixel as (group, term,
channel-in-group), so each term is one contiguous op followed by one wide strided copy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class FeatureOp:
    """One activation feature: bit form when ``lut`` is None, else ``lut[x - x_lo]``.

    Attributes:
        mask: ``x & mask`` (bit form).
        flip: xor-ed into the masked bits (``mask`` for a complement, else 0).
        shift: left shift applied after the mask.
        plus_x: 1 when ``x`` itself is added, else 0.
        const: added where ``x != 0`` (may be negative).
        identity: the feature is ``x`` itself.
        lut: (n_x,) feature table for any other feature (dtype of the kernel's features).
    """

    mask: int = 0
    flip: int = 0
    shift: int = 0
    plus_x: int = 0
    const: int = 0
    identity: bool = False
    lut: torch.Tensor | None = None


def feature_ops(f: np.ndarray, x_lo: int, dtype: torch.dtype) -> list[FeatureOp]:
    """A FeatureOp per row of ``f`` (R + 1, n_x), bit form when exact over the whole domain."""
    xs = np.arange(x_lo, x_lo + f.shape[1], dtype=np.int64)
    return [_bit_form(row, xs) or FeatureOp(lut=torch.from_numpy(row.copy()).to(dtype))
            for row in f]


def _bit_form(row: np.ndarray, xs: np.ndarray) -> FeatureOp | None:
    if xs[0] != 0 or row.dtype.kind != "i" or row.min() < 0 or row.max() > 255:
        return None
    if np.array_equal(row, xs):
        return FeatureOp(identity=True)
    hi = int(xs[-1])
    nonzero = (xs != 0).astype(np.int64)
    for plus_x in (0, 1):
        rest = row - plus_x * xs
        for shift in range(8):
            candidates = [(int(rest[0]) >> shift, True)]  # complement: f(0) = mask << shift
            candidates += [(((int(rest[-1]) - c) >> shift) & hi, False)
                           for c in {0, int(rest[1]), int(rest[1]) - (1 << shift)}
                           if -255 <= c <= 255]
            for mask, flip in candidates:
                if not 0 <= mask <= hi:
                    continue
                bits = ((xs & mask) ^ (mask if flip else 0)) << shift
                const = int(rest[-1] - bits[-1])
                if bits.max() <= 255 and -255 <= const <= 255 and \
                        np.array_equal(rest, bits + const * nonzero):
                    return FeatureOp(mask=mask, flip=mask if flip else 0, shift=shift,
                                     plus_x=plus_x, const=const)
    return None


def padded_channels_last(x: torch.Tensor, padding: tuple[int, int], fill: int) -> torch.Tensor:
    """``x`` (N, C, H, W) as a contiguous (N, Hp, Wp, C) tensor, borders set to ``fill``."""
    py, px = padding
    if not (py or px):
        return x.permute(0, 2, 3, 1).contiguous()
    n, c, h, w = x.shape
    out = torch.empty((n, h + 2 * py, w + 2 * px, c), dtype=x.dtype)
    if py:
        out[:, :py].fill_(fill)
        out[:, py + h:].fill_(fill)
    if px:
        out[:, py:py + h, :px].fill_(fill)
        out[:, py:py + h, px + w:].fill_(fill)
    out[:, py:py + h, px:px + w].copy_(x.permute(0, 2, 3, 1))
    return out


def build(x_cl: torch.Tensor, ops: list[FeatureOp], groups: int, x_lo: int,
          dtype: torch.dtype) -> torch.Tensor:
    """Features (N, G * (R + 1) * Cg, H, W) in channels-last memory from (N, H, W, C) values.

    Channel ``g * (R + 1) * Cg + r * Cg + c`` holds term ``r`` of input channel ``g * Cg + c``.
    """
    n, h, w, c = x_cl.shape
    if len(ops) == 1 and ops[0].identity and x_cl.dtype == dtype:
        return x_cl.permute(0, 3, 1, 2)
    cg, r1 = c // groups, len(ops)
    flat = x_cl.reshape(-1, c)
    out = torch.empty((flat.shape[0], groups, r1, cg), dtype=dtype)
    cache: dict[str, torch.Tensor] = {}
    for r, op in enumerate(ops):
        val = _apply(op, flat, x_lo, cache)
        _wide_copy(out[:, :, r, :], val.reshape(-1, groups, cg))
    return out.reshape(n, h, w, groups * r1 * cg).permute(0, 3, 1, 2)


def _apply(op: FeatureOp, x: torch.Tensor, x_lo: int,
           cache: dict[str, torch.Tensor]) -> torch.Tensor:
    if op.lut is not None:
        if "index" not in cache:
            cache["index"] = (x.to(torch.int32) - x_lo).reshape(-1)
        return torch.index_select(op.lut, 0, cache["index"]).reshape(x.shape)
    if op.identity:
        return x
    val = torch.bitwise_and(x, op.mask) if op.mask else torch.zeros_like(x)
    if op.flip:
        val.bitwise_xor_(op.flip)
    if op.shift:
        val.bitwise_left_shift_(op.shift)
    if op.plus_x:
        val.add_(x)
    if op.const:
        if "nonzero" not in cache:
            cache["nonzero"] = _nonzero_u8(x)
        if op.const > 0:
            val.add_(cache["nonzero"], alpha=op.const)
        else:
            val.sub_(cache["nonzero"], alpha=-op.const)
    return val


def _nonzero_u8(x: torch.Tensor) -> torch.Tensor:
    """``[x != 0]`` as uint8 by bit arithmetic (faster than a bool compare on this CPU)."""
    t = torch.bitwise_and(x, 0x7F).add_(0x7F).bitwise_or_(x)  # bit 7 set iff x != 0
    return t.bitwise_right_shift_(7)


_WIDE = (torch.complex128, torch.int64, torch.int32, torch.int16)


def _wide_copy(dst: torch.Tensor, src: torch.Tensor) -> None:
    """``dst.copy_(src)`` through the widest element type both last dims allow."""
    if dst.dtype == src.dtype:
        nbytes = dst.shape[-1] * dst.element_size()
        for wide in _WIDE:
            size = wide.itemsize
            if nbytes % size == 0 and (dst.storage_offset() * dst.element_size()) % size == 0:
                dst.view(wide).copy_(src.view(wide))
                return
    dst.copy_(src)
