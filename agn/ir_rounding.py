"""Multiplier-aware operand rounding of an exported integer network, without re-export.

:func:`agn.layers.round_operands_` offsets the activation codes of each input quantizer whose
every approximable consumer ignores low activation bits, and the exporter moves that offset into
the producing requantisation (``zp_out + offset``, ``lo + offset``). :class:`ActivationRounding`
does the same on the IR for any assignment: it finds, once, which node produces the codes each
approximable layer reads (through max pooling and flattening) and, per assignment, rewrites those
producers and the nodes that carry the offset on (max pooling, flattening, the exact shortcut
convolutions of a residual block, the zero points of a residual add). The network it returns is
the one the exporter writes for the model with ``round_operands_(model, weights=False)``, bit for
bit, so the search scores candidates rounded at the cost of a few dataclass copies.

Weights are not rounded here: a weight grid changes the layer's weight scale, which the integer
network no longer knows.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from deploy.ir import Add, Conv, Flatten, Input, Linear, MaxPool, Node
from deploy.network import Network
from errormodels.rounding import IgnoredBits, ignored_bits

__all__ = ["ActivationRounding", "RoundingError"]

_PASS = (MaxPool, Flatten)
"""Nodes whose output codes are their input's (the offset passes through)."""


class RoundingError(ValueError):
    """A network whose offset codes would reach a node that cannot carry them."""


class ActivationRounding:
    """The activation offsets of a network's approximable layers under any assignment.

    Args:
        net: an exported network (without operand rounding: its producers' zero points are the
            quantizers' own).
    """

    def __init__(self, net: Network) -> None:
        by_name = {n.name: n for n in net.nodes}
        consumers: dict[str, list[str]] = {}
        for layer in net.layers:
            src = by_name[layer.input]
            while isinstance(src, _PASS):
                src = by_name[src.input]
            if not isinstance(src, Input):  # the model's input keeps its codes
                consumers.setdefault(src.name, []).append(layer.name)
        self._specs = {n.name: n.multiplier for n in net.layers}
        self.consumers = {p: tuple(c) for p, c in consumers.items()}
        self.producers = tuple(self.consumers)

    def offsets(self, specs: Mapping[str, object]) -> tuple[int, ...]:
        """Offset of each of :attr:`producers` (in order) when layer ``name`` runs
        ``specs[name]``: ``2^(k-1)`` for the fewest low activation bits ``k`` its consumers
        ignore (0 when a consumer keeps them all, or is block-wise); a layer ``specs`` leaves
        out keeps the network's multiplier."""
        out = []
        for p in self.producers:
            k = min(_x_bits(specs.get(c, self._specs[c])) for c in self.consumers[p])
            out.append(IgnoredBits(x=k).x_offset)
        return tuple(out)

    def layer_offsets(self, offsets: tuple[int, ...]) -> dict[str, int]:
        """The offset each approximable layer's input codes carry under ``offsets``."""
        return {c: off for p, off in zip(self.producers, offsets) for c in self.consumers[p]}

    def apply(self, net: Network, offsets: tuple[int, ...]) -> Network:
        """``net`` (the network given at construction, or a copy with other multipliers or
        biases) with the producers' codes offset by ``offsets``.

        Raises:
            RoundingError: offset codes reaching a node that cannot carry them (an average
                pooling, as the exporter refuses it too; a non-approximable layer that is not an
                exact pass-through).
        """
        if not any(offsets):
            return net
        carry: dict[str, int] = {}  # node -> offset its output codes carry
        own = {p: off for p, off in zip(self.producers, offsets) if off}
        nodes: list[Node] = []
        for n in net.nodes:
            ins = [carry.get(s, 0) for s in n.inputs]
            if isinstance(n, _PASS):
                carry[n.name] = ins[0]
            elif isinstance(n, Conv) and not n.approximable and ins[0]:
                n = _shift_passthrough(n, ins[0])
                carry[n.name] = ins[0]
            elif isinstance(n, Add) and any(ins):
                n = dataclasses.replace(n, zp_a=n.zp_a + ins[0], zp_b=n.zp_b + ins[1])
            elif any(ins) and not (isinstance(n, (Conv, Linear)) and n.approximable):
                raise RoundingError(f"node {n.name!r} ({n.op}) reads codes offset by {ins} "
                                    f"(operand rounding); it cannot carry them")
            off = own.get(n.name, 0)
            if off:
                n = _offset_output(n, off)
                carry[n.name] = off
            nodes.append(n)
        return Network(tuple(nodes), name=net.name, schema_version=net.schema_version)


def _x_bits(spec: object) -> int:
    return ignored_bits(spec).x if isinstance(spec, str) else 0


def _offset_output(n: Node, off: int) -> Node:
    """``n`` with its output codes offset: ``zp_out + off`` and ``lo + off`` (clipped at hi)."""
    if isinstance(n, Add):
        return dataclasses.replace(n, zp_out=n.zp_out + off, lo=min(n.lo + off, n.hi))
    rq = getattr(n, "requant", None)
    if rq is None:
        raise RoundingError(f"node {n.name!r} ({n.op}) produces codes a rounded layer reads but "
                            f"has no requantisation to offset them")
    return dataclasses.replace(n, requant=dataclasses.replace(
        rq, zp_out=rq.zp_out + off, lo=min(rq.lo + off, rq.hi)))


def _shift_passthrough(n: Conv, off: int) -> Conv:
    """An exact shortcut convolution (codes in, the same codes out: ``zp_out`` its input's zero
    point) whose input codes carry ``off``: its zero-point bias and output follow them."""
    rq = n.requant
    if rq is None or n.bias.size and not np.array_equal(
            n.bias, -rq.zp_out * n.weight.reshape(len(n.weight), -1).sum(1)):
        raise RoundingError(f"node {n.name!r} (conv) is not approximable and not an exact "
                            f"pass-through of its input codes; it cannot carry their offset")
    bias = n.bias.astype(np.int64) - off * n.weight.reshape(len(n.weight), -1).sum(1)
    return dataclasses.replace(n, bias=bias.astype(np.int32), requant=dataclasses.replace(
        rq, zp_out=rq.zp_out + off, lo=min(rq.lo + off, rq.hi)))
