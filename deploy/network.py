"""The integer network: an ordered graph of IR nodes, checked as a whole on construction.

Construction infers every tensor's shape, dtype, zero point and value range, checks that each
conv/linear operand lies in its multiplier's domains, and rejects parameters whose worst-case
accumulator ``|bias| + fan_in * max|m(x, w)|`` leaves int32 (the C side would overflow).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

import hwlib
from deploy.errors import IRError
from deploy.ir import (
    INT32_MAX, Add, AvgPool, Conv, Flatten, GlobalAvgPool, Input, Linear, MaxPool, Node, Requant,
    Requantize, _Layer,
)

SCHEMA_VERSION = 1


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


@lru_cache(maxsize=1024)
def max_abs_product(spec: str) -> int:
    """``max |m(x, w)|`` over the activations a uint8 network can feed ``spec`` and its weights."""
    m = hwlib.get(spec)
    xd = m.network_x_domain()
    rows = m.table()[xd.lo - m.x_domain.lo: xd.hi - m.x_domain.lo + 1]
    return int(np.abs(rows).max())


def _out_size(n: int, k: int, s: int, p0: int, p1: int, owner: str, axis: str) -> int:
    span = n + p0 + p1 - k
    if span < 0:
        raise IRError(f"{owner}: kernel {k} larger than the padded input {axis} {n + p0 + p1}")
    return span // s + 1


def _need(info: TensorInfo, owner: str, dtype: str, ndim: int) -> None:
    if info.dtype != dtype or len(info.shape) != ndim:
        raise IRError(f"{owner}: expected a {dtype} input of rank {ndim}, got {info.dtype} "
                      f"{info.shape}")


def _check_window_sum(area: int, x: TensorInfo, owner: str) -> None:
    if area * x.hi > INT32_MAX:
        raise IRError(f"{owner}: window sum of {area} values up to {x.hi} exceeds int32 "
                      f"({INT32_MAX})")


def _requant_info(rq: Requant, shape: tuple[int, ...], owner: str) -> TensorInfo:
    if rq.channels != shape[0]:
        raise IRError(f"{owner}: field 'requant' expected {shape[0]} channels, got "
                      f"{rq.channels}")
    return TensorInfo(shape, "uint8", rq.zp_out, rq.lo, rq.hi)


def _check_layer(node: _Layer, x: TensorInfo) -> None:
    """Operands inside the multiplier's domains and the worst-case accumulator inside int32."""
    owner = node.owner
    try:
        m = hwlib.get(node.multiplier)
    except ValueError as e:
        raise IRError(f"{owner}: field 'multiplier' {node.multiplier!r} is not usable: {e}") \
            from None
    xd, wd = m.x_domain, m.w_domain
    padded = isinstance(node, Conv) and any(node.padding)
    lo, hi = (min(x.lo, x.zero_point), max(x.hi, x.zero_point)) if padded else (x.lo, x.hi)
    if lo < xd.lo or hi > xd.hi:
        raise IRError(f"{owner}: activations in [{lo}, {hi}] (input zero point "
                      f"{x.zero_point}) outside the activation domain {xd.name} [{xd.lo}, "
                      f"{xd.hi}] of multiplier {m.spec!r}; quantize the input to that range")
    wmin, wmax = int(node.weight.min()), int(node.weight.max())
    if wmin < wd.lo or wmax > wd.hi:
        raise IRError(f"{owner}: weights in [{wmin}, {wmax}] outside the weight domain "
                      f"{wd.name} [{wd.lo}, {wd.hi}] of multiplier {m.spec!r}")
    worst = int(np.abs(node.bias.astype(np.int64)).max()) + node.fan_in * max_abs_product(m.spec)
    if worst > INT32_MAX:
        raise IRError(f"{owner}: worst-case accumulator |bias| {int(np.abs(node.bias).max())} + "
                      f"fan_in {node.fan_in} * max|m(x, w)| {max_abs_product(m.spec)} of "
                      f"{m.spec!r} = {worst} exceeds int32 ({INT32_MAX}); reduce the fan-in or "
                      f"the bias")


def infer(node: Node, ins: list[TensorInfo]) -> TensorInfo:
    """The output TensorInfo of ``node`` given its inputs' (raises IRError on a mismatch)."""
    owner = node.owner
    if isinstance(node, Input):
        return TensorInfo(node.shape, "uint8", node.zero_point, node.lo, node.hi)
    if isinstance(node, Conv):
        x = ins[0]
        _need(x, owner, "uint8", 3)
        cout, cin_g, kh, kw = node.weight.shape
        if x.shape[0] != cin_g * node.groups:
            raise IRError(f"{owner}: weight expects {cin_g} x {node.groups} groups = "
                          f"{cin_g * node.groups} input channels, got {x.shape[0]}")
        t, b, l, r = node.padding
        ho = _out_size(x.shape[1], kh, node.stride[0], t, b, owner, "height")
        wo = _out_size(x.shape[2], kw, node.stride[1], l, r, owner, "width")
        _check_layer(node, x)
        shape: tuple[int, ...] = (cout, ho, wo)
        if node.requant is None:
            return TensorInfo(shape, "int32", 0, -INT32_MAX - 1, INT32_MAX)
        return _requant_info(node.requant, shape, owner)
    if isinstance(node, Linear):
        x = ins[0]
        _need(x, owner, "uint8", 1)
        if node.weight.shape[1] != x.shape[0]:
            raise IRError(f"{owner}: weight expects {node.weight.shape[1]} inputs, got "
                          f"{x.shape[0]}")
        _check_layer(node, x)
        if node.requant is None:
            return TensorInfo((node.out_channels,), "int32", 0, -INT32_MAX - 1, INT32_MAX)
        return _requant_info(node.requant, (node.out_channels,), owner)
    if isinstance(node, MaxPool):
        x = ins[0]
        _need(x, owner, "uint8", 3)
        t, b, l, r = node.padding
        ho = _out_size(x.shape[1], node.kernel[0], node.stride[0], t, b, owner, "height")
        wo = _out_size(x.shape[2], node.kernel[1], node.stride[1], l, r, owner, "width")
        return TensorInfo((x.shape[0], ho, wo), "uint8", x.zero_point, x.lo, x.hi)
    if isinstance(node, AvgPool):
        x = ins[0]
        _need(x, owner, "uint8", 3)
        ho = _out_size(x.shape[1], node.kernel[0], node.stride[0], 0, 0, owner, "height")
        wo = _out_size(x.shape[2], node.kernel[1], node.stride[1], 0, 0, owner, "width")
        _check_window_sum(node.kernel[0] * node.kernel[1], x, owner)
        assert node.requant is not None
        return _requant_info(node.requant, (x.shape[0], ho, wo), owner)
    if isinstance(node, GlobalAvgPool):
        x = ins[0]
        _need(x, owner, "uint8", 3)
        _check_window_sum(x.shape[1] * x.shape[2], x, owner)
        assert node.requant is not None
        return _requant_info(node.requant, (x.shape[0], 1, 1), owner)
    if isinstance(node, Add):
        a, b = ins
        _need(a, owner, "uint8", len(a.shape))
        _need(b, owner, "uint8", len(a.shape))
        if a.shape != b.shape:
            raise IRError(f"{owner}: inputs {node.a!r} {a.shape} and {node.b!r} {b.shape} "
                          f"expected the same shape")
        if (node.zp_a, node.zp_b) != (a.zero_point, b.zero_point):
            raise IRError(f"{owner}: fields 'zp_a', 'zp_b' ({node.zp_a}, {node.zp_b}) expected "
                          f"the zero points of {node.a!r} and {node.b!r} ({a.zero_point}, "
                          f"{b.zero_point})")
        return TensorInfo(a.shape, "uint8", node.zp_out, node.lo, node.hi)
    if isinstance(node, Flatten):
        x = ins[0]
        _need(x, owner, "uint8", 3)
        return TensorInfo((x.size,), "uint8", x.zero_point, x.lo, x.hi)
    if isinstance(node, Requantize):
        x = ins[0]
        if x.dtype != "int32":
            raise IRError(f"{owner}: expected an int32 input (accumulators), got {x.dtype}")
        assert node.requant is not None
        return _requant_info(node.requant, x.shape, owner)
    raise IRError(f"{owner}: unknown node type {type(node).__name__}")


@dataclass(frozen=True, eq=False)
class Network:
    """An integer network: nodes in execution order, the first an Input, the last the output.

    Attributes:
        nodes: the nodes; each reads only nodes listed before it.
        name: a label for reports and generated code.
        schema_version: version of the IR schema (``SCHEMA_VERSION``).
        infos: inferred per-node TensorInfo (filled on construction).
    """

    nodes: tuple[Node, ...]
    name: str = "net"
    schema_version: int = SCHEMA_VERSION
    infos: dict[str, TensorInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nodes = tuple(self.nodes) if isinstance(self.nodes, (list, tuple)) else None
        if not nodes or not all(isinstance(n, Node) for n in nodes):
            raise IRError(f"Network {self.name!r}: field 'nodes' expected a non-empty sequence of "
                          f"IR nodes, got {self.nodes!r:.200}")
        if self.schema_version != SCHEMA_VERSION:
            raise IRError(f"Network {self.name!r}: schema_version {self.schema_version!r} is not "
                          f"supported (expected {SCHEMA_VERSION})")
        if not isinstance(nodes[0], Input) or any(isinstance(n, Input) for n in nodes[1:]):
            raise IRError(f"Network {self.name!r}: expected exactly one Input node, first; got "
                          f"{[n.op for n in nodes]}")
        infos: dict[str, TensorInfo] = {}
        for n in nodes:
            if n.name in infos:
                raise IRError(f"Network {self.name!r}: node name {n.name!r} used twice")
            for src in n.inputs:
                if src not in infos:
                    raise IRError(f"{n.owner}: input {src!r} is not a node defined before it")
            infos[n.name] = infer(n, [infos[s] for s in n.inputs])
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "infos", infos)

    @property
    def input(self) -> Input:
        """The Input node."""
        return self.nodes[0]  # type: ignore[return-value]

    @property
    def output(self) -> Node:
        """The last node (the classifier, producing int32 logits in a classification net)."""
        return self.nodes[-1]

    @property
    def layers(self) -> tuple[_Layer, ...]:
        """The approximable layers (conv, linear) in execution order."""
        return tuple(n for n in self.nodes if isinstance(n, _Layer) and n.approximable)

    def node(self, name: str) -> Node:
        """The node called ``name`` (KeyError listing the names otherwise)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"network {self.name!r} has no node {name!r}; nodes: "
                       f"{[n.name for n in self.nodes]}")

    def multipliers(self) -> dict[str, str]:
        """``{layer name: multiplier spec}`` for every approximable layer."""
        return {n.name: n.multiplier for n in self.layers}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Network):
            return NotImplemented
        from deploy.serialize import to_json_and_arrays

        ja, aa = to_json_and_arrays(self)
        jb, ab = to_json_and_arrays(other)
        return ja == jb and aa.keys() == ab.keys() and all(
            aa[k].dtype == ab[k].dtype and np.array_equal(aa[k], ab[k]) for k in aa)

    __hash__ = None  # type: ignore[assignment]
