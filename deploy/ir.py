"""Nodes of the integer network IR: frozen dataclasses checked on construction.

Semantics are those of ``docs/integer_semantics.md``. Tensors are NCHW (``(C, H, W)`` per sample)
or flat ``(F,)``; activations are uint8 with a zero point, accumulators int32. Every node checks
its own fields in ``__post_init__`` (the error names the node and the field); checks that need the
graph (shapes, operand domains, int32 accumulator bounds) live in :mod:`deploy.network`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from deploy.errors import IRError

INT32_MAX = 2**31 - 1


def _where(owner: str, fld: str) -> str:
    return f"{owner}: field {fld!r}" if owner else f"field {fld!r}"


def as_int_array(value: Any, owner: str, fld: str, dtype: type, lo: int, hi: int,
                 ndim: int) -> np.ndarray:
    """``value`` as a read-only array of ``dtype`` after checking integer kind, rank and range."""
    a = np.asarray(value)
    if a.dtype.kind not in "iu" and not (a.size == 0 and a.dtype.kind == "f"):
        raise IRError(f"{_where(owner, fld)} expected integers, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise IRError(f"{_where(owner, fld)} expected {ndim} dimension(s), got shape {a.shape}")
    if a.size:
        amin, amax = int(a.min()), int(a.max())
        if amin < lo or amax > hi:
            bad = amin if amin < lo else amax
            raise IRError(f"{_where(owner, fld)} expected values in [{lo}, {hi}], got {bad}")
    out = a.astype(dtype)
    out.setflags(write=False)
    return out


def _int(value: Any, owner: str, fld: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise IRError(f"{_where(owner, fld)} expected an integer in [{lo}, {hi}], got {value!r}")
    if not lo <= int(value) <= hi:
        raise IRError(f"{_where(owner, fld)} expected an integer in [{lo}, {hi}], got {value}")
    return int(value)


def _ints(value: Any, owner: str, fld: str, n: int, lo: int, hi: int) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,) * n
    if not isinstance(value, (tuple, list)) or len(value) != n:
        raise IRError(f"{_where(owner, fld)} expected {n} integers, got {value!r}")
    return tuple(_int(v, owner, fld, lo, hi) for v in value)


def _padding4(value: Any, owner: str) -> tuple[int, int, int, int]:
    """``p``, ``(py, px)`` or ``(top, bottom, left, right)`` -> the 4-tuple PULP-NN takes."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        value = (value[0], value[0], value[1], value[1])
    t, b, l, r = _ints(value, owner, "padding", 4, 0, 255)
    return t, b, l, r


def _set(obj: Any, **values: Any) -> None:
    for k, v in values.items():
        object.__setattr__(obj, k, v)


@dataclass(frozen=True, eq=False)
class Requant:
    """Per-channel requantisation ``clip(((acc*mult + 2^(shift-1)) >> shift) + zp_out, lo, hi)``.

    ReLU is ``zp_out = 0, lo = 0, hi = 255``; a narrower ``hi`` (e.g. 127) feeds multipliers whose
    activation domain is narrower than uint8.
    """

    mult: np.ndarray
    shift: np.ndarray
    zp_out: int = 0
    lo: int = 0
    hi: int = 255

    def __post_init__(self) -> None:
        owner = "Requant"
        mult = as_int_array(self.mult, owner, "mult", np.int32, 1, INT32_MAX, 1)
        shift = as_int_array(self.shift, owner, "shift", np.int32, 1, 62, 1)
        if mult.shape != shift.shape:
            raise IRError(f"{owner}: fields 'mult' and 'shift' expected the same length, got "
                          f"{mult.size} and {shift.size}")
        _set(self, mult=mult, shift=shift, zp_out=_int(self.zp_out, owner, "zp_out", 0, 255),
             lo=_int(self.lo, owner, "lo", 0, 255), hi=_int(self.hi, owner, "hi", 0, 255))
        if self.lo > self.hi:
            raise IRError(f"{owner}: field 'lo' ({self.lo}) expected <= 'hi' ({self.hi})")

    @property
    def channels(self) -> int:
        """Number of channels the parameters cover."""
        return int(self.mult.size)


@dataclass(frozen=True, eq=False)
class Node:
    """Base of every IR node: a unique ``name`` and the names of its input nodes."""

    op: ClassVar[str] = ""
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise IRError(f"{type(self).__name__}: field 'name' expected a non-empty string, "
                          f"got {self.name!r}")
        try:
            self._check()
        except IRError as e:
            raise IRError(f"node {self.name!r} ({self.op}): {e}") from None

    def _check(self) -> None:
        """Check and normalise the node's own fields (subclass hook)."""

    @property
    def owner(self) -> str:
        """How error messages name this node."""
        return f"node {self.name!r}"

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the nodes this node reads."""
        return ()


def _check_input_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise IRError(f"field 'input' expected a node name, got {value!r}")
    return value


@dataclass(frozen=True, eq=False)
class Input(Node):
    """The network input: uint8 ``(C, H, W)`` with real value ``scale * (q - zero_point)``.

    ``lo``/``hi`` bound the quantized values (e.g. 0..127 when the first layer uses a multiplier
    whose activation domain is 0..127).
    """

    op: ClassVar[str] = "input"
    shape: tuple[int, int, int] = (1, 1, 1)
    scale: float = 1.0
    zero_point: int = 0
    lo: int = 0
    hi: int = 255

    def _check(self) -> None:
        shape = _ints(self.shape, "", "shape", 3, 1, 65535)
        if not (isinstance(self.scale, (int, float, np.floating)) and math.isfinite(self.scale)
                and self.scale > 0):
            raise IRError(f"field 'scale' expected a finite number > 0, got {self.scale!r}")
        _set(self, shape=shape, scale=float(self.scale),
             zero_point=_int(self.zero_point, "", "zero_point", 0, 255),
             lo=_int(self.lo, "", "lo", 0, 255), hi=_int(self.hi, "", "hi", 0, 255))
        if self.lo > self.hi:
            raise IRError(f"field 'lo' ({self.lo}) expected <= 'hi' ({self.hi})")


@dataclass(frozen=True, eq=False)
class _Layer(Node):
    """A conv or linear layer: int8 weights, int32 bias, a multiplier spec, optional requant.

    ``approximable=False`` marks a layer whose multiplier is fixed (e.g. an exact shortcut
    convolution): it is not part of the multiplier assignment.
    """

    input: str = ""
    weight: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int8))
    bias: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    multiplier: str = "exact"
    requant: Requant | None = None
    approximable: bool = True
    weight_ndim: ClassVar[int] = 2

    def _check(self) -> None:
        _set(self, input=_check_input_name(self.input))
        w = as_int_array(self.weight, "", "weight", np.int8, -128, 127, self.weight_ndim)
        b = as_int_array(self.bias, "", "bias", np.int32, -INT32_MAX - 1, INT32_MAX, 1)
        if w.shape[0] < 1 or b.shape != (w.shape[0],):
            raise IRError(f"field 'bias' expected shape ({w.shape[0]},) (one per output "
                          f"channel, at least one), got {b.shape}")
        if not isinstance(self.multiplier, str) or not self.multiplier:
            raise IRError(f"field 'multiplier' expected a spec string such as 'marlin:17', got "
                          f"{self.multiplier!r}")
        if not isinstance(self.approximable, (bool, np.bool_)):
            raise IRError(f"field 'approximable' expected a bool, got {self.approximable!r}")
        if self.requant is not None:
            if not isinstance(self.requant, Requant):
                raise IRError(f"field 'requant' expected a Requant or None, got {self.requant!r}")
            if self.requant.channels != w.shape[0]:
                raise IRError(f"field 'requant' expected {w.shape[0]} channels, got "
                              f"{self.requant.channels}")
        _set(self, weight=w, bias=b)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    @property
    def out_channels(self) -> int:
        """Number of output channels (neurons)."""
        return int(self.weight.shape[0])

    @property
    def fan_in(self) -> int:
        """Products summed into each accumulator."""
        return int(np.prod(self.weight.shape[1:]))


@dataclass(frozen=True, eq=False)
class Conv(_Layer):
    """2-D convolution, weight ``(Cout, Cin/groups, Kh, Kw)``; padding uses the input zero point."""

    op: ClassVar[str] = "conv"
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    groups: int = 1
    weight_ndim: ClassVar[int] = 4

    def _check(self) -> None:
        super()._check()
        groups = _int(self.groups, "", "groups", 1, 65535)
        if self.out_channels % groups:
            raise IRError(f"field 'groups' ({groups}) expected to divide the {self.out_channels} "
                          f"output channels")
        _set(self, stride=_ints(self.stride, "", "stride", 2, 1, 255),
             padding=_padding4(self.padding, ""), groups=groups)


@dataclass(frozen=True, eq=False)
class Linear(_Layer):
    """Fully connected layer, weight ``(Cout, F)``; without requant it outputs int32 logits."""

    op: ClassVar[str] = "linear"


@dataclass(frozen=True, eq=False)
class MaxPool(Node):
    """Max pooling; padded positions never win (each padding is below the kernel size)."""

    op: ClassVar[str] = "maxpool"
    input: str = ""
    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)

    def _check(self) -> None:
        kernel = _ints(self.kernel, "", "kernel", 2, 1, 255)
        padding = _padding4(self.padding, "")
        if max(padding[:2]) >= kernel[0] or max(padding[2:]) >= kernel[1]:
            raise IRError(f"field 'padding' {padding} expected each side below the kernel "
                          f"{kernel}")
        _set(self, input=_check_input_name(self.input), kernel=kernel, padding=padding,
             stride=_ints(self.stride, "", "stride", 2, 1, 255))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


@dataclass(frozen=True, eq=False)
class AvgPool(Node):
    """Average pooling without padding: window sum, then the per-channel requant."""

    op: ClassVar[str] = "avgpool"
    input: str = ""
    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    requant: Requant | None = None

    def _check(self) -> None:
        if not isinstance(self.requant, Requant):
            raise IRError(f"field 'requant' expected a Requant, got {self.requant!r}")
        _set(self, input=_check_input_name(self.input),
             kernel=_ints(self.kernel, "", "kernel", 2, 1, 255),
             stride=_ints(self.stride, "", "stride", 2, 1, 255))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


@dataclass(frozen=True, eq=False)
class _RequantOf(Node):
    """A one-input node that ends in a mandatory requantisation."""

    input: str = ""
    requant: Requant | None = None

    def _check(self) -> None:
        if not isinstance(self.requant, Requant):
            raise IRError(f"field 'requant' expected a Requant, got {self.requant!r}")
        _set(self, input=_check_input_name(self.input))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


@dataclass(frozen=True, eq=False)
class GlobalAvgPool(_RequantOf):
    """Global average pooling ``(C, H, W) -> (C, 1, 1)``: the sum over H x W, then requant."""

    op: ClassVar[str] = "global_avgpool"


@dataclass(frozen=True, eq=False)
class Add(Node):
    """Residual add of two uint8 tensors with their zero points, rescaled and clipped:

    ``clip((((a - zp_a)*mult_a + (b - zp_b)*mult_b + 2^(shift-1)) >> shift) + zp_out, lo, hi)``.
    ``zp_a``/``zp_b`` must be the zero points of the inputs.
    """

    op: ClassVar[str] = "add"
    a: str = ""
    b: str = ""
    mult_a: int = 1
    mult_b: int = 1
    shift: int = 1
    zp_a: int = 0
    zp_b: int = 0
    zp_out: int = 0
    lo: int = 0
    hi: int = 255

    def _check(self) -> None:
        for fld in ("a", "b"):
            if not isinstance(getattr(self, fld), str) or not getattr(self, fld):
                raise IRError(f"field {fld!r} expected a node name, got {getattr(self, fld)!r}")
        _set(self, mult_a=_int(self.mult_a, "", "mult_a", 0, INT32_MAX),
             mult_b=_int(self.mult_b, "", "mult_b", 0, INT32_MAX),
             shift=_int(self.shift, "", "shift", 1, 62),
             **{f: _int(getattr(self, f), "", f, 0, 255)
                for f in ("zp_a", "zp_b", "zp_out", "lo", "hi")})
        if self.lo > self.hi:
            raise IRError(f"field 'lo' ({self.lo}) expected <= 'hi' ({self.hi})")

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.a, self.b)


@dataclass(frozen=True, eq=False)
class Flatten(Node):
    """``(C, H, W) -> (C*H*W,)`` in NCHW order (torch's), whatever the target layout."""

    op: ClassVar[str] = "flatten"
    input: str = ""

    def _check(self) -> None:
        _set(self, input=_check_input_name(self.input))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


@dataclass(frozen=True, eq=False)
class Requantize(_RequantOf):
    """Stand-alone requantisation of an int32 tensor (a conv/linear without fused requant)."""

    op: ClassVar[str] = "requant"


NODE_TYPES: dict[str, type[Node]] = {
    cls.op: cls for cls in (Input, Conv, Linear, MaxPool, AvgPool, GlobalAvgPool, Add, Flatten,
                            Requantize)
}
