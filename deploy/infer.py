"""Static facts about IR tensors and the checks node types use to infer them.

Every node type's :meth:`deploy.ir.Node.infer` builds its output :class:`TensorInfo` from its
inputs' with these helpers: output sizes of windows, operand ranges against a multiplier's domains,
and worst-case int32 accumulator bounds (the C side would overflow beyond them).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

import hwlib
from deploy.errors import IRError

INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class TensorInfo:
    """What the IR knows statically about one node's output (per sample).

    Attributes:
        shape: ``(C, H, W)`` or ``(F,)``.
        dtype: ``"uint8"`` for activations, ``"int32"`` for accumulators.
        zero_point: activation zero point (0 for accumulators).
        lo: smallest value the tensor can hold.
        hi: largest value the tensor can hold.
    """

    shape: tuple[int, ...]
    dtype: str
    zero_point: int = 0
    lo: int = 0
    hi: int = 255

    @property
    def size(self) -> int:
        """Number of elements per sample."""
        return int(np.prod(self.shape))


def accumulators(shape: tuple[int, ...]) -> TensorInfo:
    """The info of an int32 accumulator tensor of ``shape``."""
    return TensorInfo(shape, "int32", 0, -INT32_MAX - 1, INT32_MAX)


@lru_cache(maxsize=1024)
def max_abs_product(spec: str) -> int:
    """``max |m(x, w)|`` over the activations a uint8 network can feed ``spec`` and its weights."""
    m = hwlib.get(spec)
    xd = m.network_x_domain()
    rows = m.table()[xd.lo - m.x_domain.lo: xd.hi - m.x_domain.lo + 1]
    return int(np.abs(rows).max())


def out_size(n: int, k: int, s: int, p0: int, p1: int, owner: str, axis: str) -> int:
    """Output length of a window ``k`` with stride ``s`` over ``n`` padded by ``p0``/``p1``."""
    span = n + p0 + p1 - k
    if span < 0:
        raise IRError(f"{owner}: kernel {k} larger than the padded input {axis} {n + p0 + p1}")
    return span // s + 1


def need(info: TensorInfo, owner: str, dtype: str, ndim: int) -> None:
    """Raise unless ``info`` is a ``dtype`` tensor of rank ``ndim``."""
    if info.dtype != dtype or len(info.shape) != ndim:
        raise IRError(f"{owner}: expected a {dtype} input of rank {ndim}, got {info.dtype} "
                      f"{info.shape}")


def check_window_sum(area: int, x: TensorInfo, owner: str) -> None:
    """Raise when a window sum of ``area`` values of ``x`` can leave int32."""
    if area * x.hi > INT32_MAX:
        raise IRError(f"{owner}: window sum of {area} values up to {x.hi} exceeds int32 "
                      f"({INT32_MAX})")


def requantized(channels: int, zp_out: int, lo: int, hi: int, shape: tuple[int, ...],
                owner: str) -> TensorInfo:
    """The uint8 info of requantised ``shape`` (``channels`` must match its first axis)."""
    if channels != shape[0]:
        raise IRError(f"{owner}: field 'requant' expected {shape[0]} channels, got {channels}")
    return TensorInfo(shape, "uint8", zp_out, lo, hi)


def check_products(owner: str, spec: str, weight: np.ndarray, bias: np.ndarray, x: TensorInfo,
                   padded: bool) -> None:
    """Operands inside the multiplier's domains and the worst-case accumulator inside int32.

    ``padded``: the input is padded with its zero point, which then reaches the multiplier too.
    """
    try:
        m = hwlib.get(spec)
    except ValueError as e:
        raise IRError(f"{owner}: field 'multiplier' {spec!r} is not usable: {e}") from None
    xd, wd = m.x_domain, m.w_domain
    lo, hi = (min(x.lo, x.zero_point), max(x.hi, x.zero_point)) if padded else (x.lo, x.hi)
    if lo < xd.lo or hi > xd.hi:
        raise IRError(f"{owner}: activations in [{lo}, {hi}] (input zero point "
                      f"{x.zero_point}) outside the activation domain {xd.name} [{xd.lo}, "
                      f"{xd.hi}] of multiplier {m.spec!r}; quantize the input to that range")
    wmin, wmax = int(weight.min()), int(weight.max())
    if wmin < wd.lo or wmax > wd.hi:
        raise IRError(f"{owner}: weights in [{wmin}, {wmax}] outside the weight domain "
                      f"{wd.name} [{wd.lo}, {wd.hi}] of multiplier {m.spec!r}")
    fan_in = int(np.prod(weight.shape[1:]))
    max_bias = int(np.abs(bias.astype(np.int64)).max())
    worst = max_bias + fan_in * max_abs_product(m.spec)
    if worst > INT32_MAX:
        raise IRError(f"{owner}: worst-case accumulator |bias| {max_bias} + "
                      f"fan_in {fan_in} * max|m(x, w)| {max_abs_product(m.spec)} of "
                      f"{m.spec!r} = {worst} exceeds int32 ({INT32_MAX}); reduce the fan-in or "
                      f"the bias")
