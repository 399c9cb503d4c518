"""The integer network: an ordered graph of IR nodes, checked as a whole on construction.

Construction runs every node's own inference (:meth:`deploy.ir.Node.infer`): each tensor's
shape, dtype, zero point and value range, each conv/linear operand inside its multiplier's
domains, every worst-case accumulator ``|bias| + fan_in * max|m(x, w)|`` inside int32 (the C side
would overflow).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deploy.errors import IRError
from deploy.infer import TensorInfo
from deploy.ir import Input, Node, _Layer
from hwlib.blocks import LayerSpec

__all__ = ["SCHEMA_VERSION", "Network", "TensorInfo"]

SCHEMA_VERSION = 3
"""Version of the IR schema; 2 added the input's float normalisation (``Input.mean/std``), 3 a
layer's block-wise multipliers (``multiplier`` as a list of blocks)."""


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
            infos[n.name] = n.infer([infos[s] for s in n.inputs])
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

    def multipliers(self) -> dict[str, LayerSpec]:
        """``{layer name: multiplier spec (or blocks)}`` for every approximable layer."""
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
