"""Nodes of the integer network IR: frozen, keyword-only dataclasses checked on construction.

Semantics are those of ``docs/integer_semantics.md``. Tensors are NCHW (``(C, H, W)`` per sample)
or flat ``(F,)``; activations are uint8 with a zero point, accumulators int32. Every node checks
its own fields in ``__post_init__`` (the error names the node and the field) and owns its
inference: :meth:`Node.infer` gives its output :class:`~deploy.infer.TensorInfo` from its inputs'
(shapes, zero points, value ranges, operand domains, int32 accumulator bounds), so a node type is
defined in one place. Executing a node is the backends' job: each registers one function per node
type with a :class:`deploy.backend.Backend` (the NumPy reference, ``agn``'s torch executor, the C
emitter).
"""
from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from deploy.errors import AssignmentError, IRError
from deploy.infer import (
    INT32_MAX,
    TensorInfo,
    accumulators,
    check_products,
    check_window_sum,
    need,
    out_size,
    requantized,
)
from hwlib.blocks import LayerSpec, as_blocks, check_blocks, layer_specs


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
    if a.dtype == dtype and a.flags.owndata and not a.flags.writeable:
        return a  # already one of the IR's frozen arrays (a node copied with a new field)
    out: np.ndarray = a.astype(dtype)
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
    top, bottom, left, right = _ints(value, owner, "padding", 4, 0, 255)
    return top, bottom, left, right


def _set(obj: Any, **values: Any) -> None:
    for k, v in values.items():
        object.__setattr__(obj, k, v)


@dataclass(frozen=True, eq=False)
class Requant:
    """Per-channel requantisation ``clip(((acc*mult + 2^(shift-1)) >> shift) + zp_out, lo, hi)``.

    ReLU is ``zp_out = 0, lo = 0, hi = 255`` (the defaults); a narrower ``hi`` (e.g. 127) feeds
    multipliers whose activation domain is narrower than uint8.
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

    def info(self, shape: tuple[int, ...], owner: str) -> TensorInfo:
        """The uint8 output info of requantising a tensor of ``shape``."""
        return requantized(self.channels, self.zp_out, self.lo, self.hi, shape, owner)


@dataclass(frozen=True, eq=False, kw_only=True)
class Node(abc.ABC):
    """Base of every IR node: a unique ``name``, the names of its inputs and its inference."""

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

    def _check(self) -> None:  # noqa: B027 (an optional hook: most nodes override it)
        """Check and normalise the node's own fields (subclass hook)."""

    @abc.abstractmethod
    def infer(self, ins: Sequence[TensorInfo]) -> TensorInfo:
        """The output info given the inputs' (in :attr:`inputs` order); IRError on a mismatch."""

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


def _per_channel(value: Any, fld: str, channels: int, positive: bool) -> tuple[float, ...]:
    a = np.asarray(value)
    if a.dtype.kind not in "iuf" or a.shape != (channels,):
        raise IRError(f"field {fld!r} expected {channels} numbers (one per input channel), got "
                      f"{value!r}")
    bad = ~np.isfinite(a) | ((a <= 0) if positive else False)
    if bad.any():
        raise IRError(f"field {fld!r} expected finite numbers{' > 0' if positive else ''}, "
                      f"got {float(a[bad][0])}")
    return tuple(float(v) for v in a)


@dataclass(frozen=True, eq=False, kw_only=True)
class Input(Node):
    """The network input: uint8 ``(C, H, W)`` codes with real value ``scale * (q - zero_point)``.

    A float image ``x`` is encoded as ``clip(round(((x - mean[c]) / std[c]) / scale) +
    zero_point, lo, hi)`` in float32 arithmetic (:func:`deploy.encode_inputs`): ``mean``/``std``
    are the per-channel float normalisation the model was trained with (``(0,)*C`` / ``(1,)*C``
    for none), or None when the network does not record it (it then cannot encode inputs).
    ``lo``/``hi`` bound the codes (e.g. 0..127 when the first layer uses a multiplier whose
    activation domain is 0..127; the full uint8 range by default).
    """

    op: ClassVar[str] = "input"
    shape: tuple[int, int, int]
    scale: float
    zero_point: int
    lo: int = 0
    hi: int = 255
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    def _check(self) -> None:
        shape = _ints(self.shape, "", "shape", 3, 1, 65535)
        if not (isinstance(self.scale, (int, float, np.floating)) and math.isfinite(self.scale)
                and self.scale > 0):
            raise IRError(f"field 'scale' expected a finite number > 0, got {self.scale!r}")
        if (self.mean is None) != (self.std is None):
            raise IRError(f"fields 'mean' and 'std' expected both or neither, got mean "
                          f"{self.mean!r} and std {self.std!r}")
        mean = None if self.mean is None else _per_channel(self.mean, "mean", shape[0], False)
        std = None if self.std is None else _per_channel(self.std, "std", shape[0], True)
        _set(self, shape=shape, scale=float(self.scale), mean=mean, std=std,
             zero_point=_int(self.zero_point, "", "zero_point", 0, 255),
             lo=_int(self.lo, "", "lo", 0, 255), hi=_int(self.hi, "", "hi", 0, 255))
        if self.lo > self.hi:
            raise IRError(f"field 'lo' ({self.lo}) expected <= 'hi' ({self.hi})")

    def infer(self, ins: Sequence[TensorInfo]) -> TensorInfo:
        return TensorInfo(self.shape, "uint8", self.zero_point, self.lo, self.hi)


@dataclass(frozen=True, eq=False, kw_only=True)
class _Layer(Node):
    """A conv or linear layer: int8 weights, int32 bias, a multiplier spec, optional requant
    (None: int32 accumulator outputs).

    ``multiplier`` is one spec string, or (schema 3) the layer's blocks
    (:class:`hwlib.blocks.Block`: output-channel groups, or (output, input) blocks over the
    weight's axes 0 and 1), each with its spec, tiling the weight exactly once.

    ``approximable=False`` marks a layer whose multiplier is fixed (e.g. an exact shortcut
    convolution): it is not part of the multiplier assignment.
    """

    input: str
    weight: np.ndarray
    bias: np.ndarray
    multiplier: LayerSpec
    requant: Requant | None
    approximable: bool = True
    weight_ndim: ClassVar[int] = 2

    def _check(self) -> None:
        _set(self, input=_check_input_name(self.input))
        w = as_int_array(self.weight, "", "weight", np.int8, -128, 127, self.weight_ndim)
        b = as_int_array(self.bias, "", "bias", np.int32, -INT32_MAX - 1, INT32_MAX, 1)
        if w.shape[0] < 1 or b.shape != (w.shape[0],):
            raise IRError(f"field 'bias' expected shape ({w.shape[0]},) (one per output "
                          f"channel, at least one), got {b.shape}")
        if isinstance(self.multiplier, (tuple, list)):
            try:
                blocks = as_blocks(self.multiplier, "field 'multiplier'")
                check_blocks(blocks, w.shape[0], w.shape[1], "field 'multiplier'")
            except AssignmentError as e:
                raise IRError(str(e)) from None
            _set(self, multiplier=blocks)
        elif not isinstance(self.multiplier, str) or not self.multiplier:
            raise IRError(f"field 'multiplier' expected a spec string such as 'marlin:17' (or "
                          f"a list of blocks), got {self.multiplier!r}")
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

    @property
    def specs(self) -> tuple[str, ...]:
        """The distinct multiplier specs of the layer (one unless it holds blocks)."""
        return layer_specs(self.multiplier)

    def _output(self, x: TensorInfo, shape: tuple[int, ...], padded: bool) -> TensorInfo:
        # each spec checked with every weight: per tap the product is bounded by the largest
        # of the specs' bounds, so the mixed accumulator passes when each single one does
        for spec in self.specs:
            check_products(self.owner, spec, self.weight, self.bias, x, padded)
        if self.requant is None:
            return accumulators(shape)
        return self.requant.info(shape, self.owner)


@dataclass(frozen=True, eq=False, kw_only=True)
class Conv(_Layer):
    """2-D convolution, weight ``(Cout, Cin/groups, Kh, Kw)``; padding uses the input zero point.

    ``stride``, ``padding`` (``p``, ``(py, px)`` or ``(top, bottom, left, right)``) and
    ``groups`` default to torch's (1, 0, 1).
    """

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

    def infer(self, ins: Sequence[TensorInfo]) -> TensorInfo:
        (x,), owner = ins, self.owner
        need(x, owner, "uint8", 3)
        cout, cin_g, kh, kw = self.weight.shape
        if x.shape[0] != cin_g * self.groups:
            raise IRError(f"{owner}: weight expects {cin_g} x {self.groups} groups = "
                          f"{cin_g * self.groups} input channels, got {x.shape[0]}")
        top, bottom, left, right = self.padding
        ho = out_size(x.shape[1], kh, self.stride[0], top, bottom, owner, "height")
        wo = out_size(x.shape[2], kw, self.stride[1], left, right, owner, "width")
        return self._output(x, (cout, ho, wo), padded=any(self.padding))


@dataclass(frozen=True, eq=False, kw_only=True)
class Linear(_Layer):
    """Fully connected layer, weight ``(Cout, F)``; without requant it outputs int32 logits."""

    op: ClassVar[str] = "linear"

    def infer(self, ins: Sequence[TensorInfo]) -> TensorInfo:
        (x,) = ins
        need(x, self.owner, "uint8", 1)
        if self.weight.shape[1] != x.shape[0]:
            raise IRError(f"{self.owner}: weight expects {self.weight.shape[1]} inputs, got "
                          f"{x.shape[0]}")
        return self._output(x, (self.out_channels,), padded=False)


@dataclass(frozen=True, eq=False, kw_only=True)
class MaxPool(Node):
    """Max pooling; padded positions never win (each padding is below the kernel size)."""

    op: ClassVar[str] = "maxpool"
    input: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
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

    def infer(self, ins: Sequence[TensorInfo]) -> TensorInfo:
        (x,), owner = ins, self.owner
        need(x, owner, "uint8", 3)
        top, bottom, left, right = self.padding
        ho = out_size(x.shape[1], self.kernel[0], self.stride[0], top, bottom, owner, "height")
        wo = out_size(x.shape[2], self.kernel[1], self.stride[1], left, right, owner, "width")
        return TensorInfo((x.shape[0], ho, wo), "uint8", x.zero_point, x.lo, x.hi)


@dataclass(frozen=True, eq=False, kw_only=True)
class AvgPool(Node):
    """Average pooling without padding: window sum, then the per-channel requant."""

    op: ClassVar[str] = "avgpool"
    input: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    requant: Requant

    def _check(self) -> None:
        if not isinstance(self.requant, Requant):
            raise IRError(f"field 'requant' expected a Requant, got {self.requant!r}")
        _set(self, input=_check_input_name(self.input),
             kernel=_ints(self.kernel, "", "kernel", 2, 1, 255),
             stride=_ints(self.stride, "", "stride", 2, 1, 255))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    def infer(self, ins: Sequence[TensorInfo]) -> TensorInfo:
        (x,), owner = ins, self.owner
        need(x, owner, "uint8", 3)
        ho = out_size(x.shape[1], self.kernel[0], self.stride[0], 0, 0, owner, "height")
        wo = out_size(x.shape[2], self.kernel[1], self.stride[1], 0, 0, owner, "width")
        check_window_sum(self.kernel[0] * self.kernel[1], x, owner)
        return self.requant.info((x.shape[0], ho, wo), owner)


@dataclass(frozen=True, eq=False, kw_only=True)
class _RequantOf(Node):
    """A one-input node that ends in a mandatory requantisation."""

    input: str
    requant: Requant

    def _check(self) -> None:
        if not isinstance(self.requant, Requant):
            raise IRError(f"field 'requant' expected a Requant, got {self.requant!r}")
        _set(self, input=_check_input_name(self.input))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


@dataclass(frozen=True, eq=False, kw_only=True)
class GlobalAvgPool(_RequantOf):
    """Global average pooling ``(C, H, W) -> (C, 1, 1)``: the sum over H x W, then requant."""

    op: ClassVar[str] = "global_avgpool"

    def infer(self, ins: Sequence[TensorInfo]) -> TensorInfo:
        (x,) = ins
        need(x, self.owner, "uint8", 3)
        check_window_sum(x.shape[1] * x.shape[2], x, self.owner)
        return self.requant.info((x.shape[0], 1, 1), self.owner)


@dataclass(frozen=True, eq=False, kw_only=True)
class Add(Node):
    """Residual add of two uint8 tensors with their zero points, rescaled and clipped:

    ``clip((((a - zp_a)*mult_a + (b - zp_b)*mult_b + 2^(shift-1)) >> shift) + zp_out, lo, hi)``.
    ``zp_a``/``zp_b`` must be the zero points of the inputs; ``zp_out, lo, hi`` default to ReLU's
    ``0, 0, 255`` as in :class:`Requant`.
    """

    op: ClassVar[str] = "add"
    a: str
    b: str
    mult_a: int
    mult_b: int
    shift: int
    zp_a: int
    zp_b: int
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

    def infer(self, ins: Sequence[TensorInfo]) -> TensorInfo:
        (a, b), owner = ins, self.owner
        need(a, owner, "uint8", len(a.shape))
        need(b, owner, "uint8", len(a.shape))
        if a.shape != b.shape:
            raise IRError(f"{owner}: inputs {self.a!r} {a.shape} and {self.b!r} {b.shape} "
                          f"expected the same shape")
        if (self.zp_a, self.zp_b) != (a.zero_point, b.zero_point):
            raise IRError(f"{owner}: fields 'zp_a', 'zp_b' ({self.zp_a}, {self.zp_b}) expected "
                          f"the zero points of {self.a!r} and {self.b!r} ({a.zero_point}, "
                          f"{b.zero_point})")
        return TensorInfo(a.shape, "uint8", self.zp_out, self.lo, self.hi)


@dataclass(frozen=True, eq=False, kw_only=True)
class Flatten(Node):
    """``(C, H, W) -> (C*H*W,)`` in NCHW order (torch's), whatever the target layout."""

    op: ClassVar[str] = "flatten"
    input: str

    def _check(self) -> None:
        _set(self, input=_check_input_name(self.input))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    def infer(self, ins: Sequence[TensorInfo]) -> TensorInfo:
        (x,) = ins
        need(x, self.owner, "uint8", 3)
        return TensorInfo((x.size,), "uint8", x.zero_point, x.lo, x.hi)


@dataclass(frozen=True, eq=False, kw_only=True)
class Requantize(_RequantOf):
    """Stand-alone requantisation of an int32 tensor (a conv/linear without fused requant)."""

    op: ClassVar[str] = "requant"

    def infer(self, ins: Sequence[TensorInfo]) -> TensorInfo:
        (x,) = ins
        if x.dtype != "int32":
            raise IRError(f"{self.owner}: expected an int32 input (accumulators), got {x.dtype}")
        return self.requant.info(x.shape, self.owner)


NODE_TYPES: dict[str, type[Node]] = {
    cls.op: cls for cls in (Input, Conv, Linear, MaxPool, AvgPool, GlobalAvgPool, Add, Flatten,
                            Requantize)
}
"""Every node type by op name (what ``network.json`` spells)."""



def op_types() -> tuple[type[Node], ...]:
    """The node types a backend executes: every type in :data:`NODE_TYPES` but the Input, which
    only holds the data."""
    return tuple(t for t in NODE_TYPES.values() if t is not Input)
