"""The op protocol: node types own their inference, backends register one function per type."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import deploy
from deploy import zoo
from deploy.backend import Backend
from deploy.emit_pulp import emit
from deploy.errors import BackendError
from deploy.infer import TensorInfo
from deploy.ir import MaxPool, Node, _check_input_name, op_types
from deploy.pulp_ops import PULP
from deploy.reference.ops import REFERENCE


@dataclass(frozen=True, eq=False, kw_only=True)
class Negate(Node):
    """A node type defined outside deploy: ``255 - x``."""

    op: ClassVar[str] = "negate"
    input: str

    def _check(self) -> None:
        _check_input_name(self.input)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    def infer(self, ins: Sequence[TensorInfo]) -> TensorInfo:
        (x,) = ins
        return TensorInfo(x.shape, "uint8", 255 - x.zero_point, 255 - x.hi, 255 - x.lo)


@dataclass(frozen=True, eq=False, kw_only=True)
class WideMaxPool(MaxPool):
    """A subclass of a registered type: it does not inherit the parent's registrations."""


def _net(node: Node) -> deploy.Network:
    return deploy.Network((zoo.lenet5(0).input, node), name="proto")


def test_every_backend_registers_every_op_type() -> None:
    assert REFERENCE.missing() == [] and PULP.missing() == []
    assert set(op_types()) == set(deploy.ir.NODE_TYPES.values()) - {deploy.Input}


def test_a_node_type_infers_its_own_output() -> None:
    net = _net(Negate(name="neg", input="input"))
    zp = net.input.zero_point
    assert net.infos["neg"] == TensorInfo((1, 32, 32), "uint8", 255 - zp, 0, 255)


def test_a_missing_registration_names_the_node_type_and_the_backend(tmp_path) -> None:
    net = _net(Negate(name="neg", input="input"))
    x = np.zeros((1, 1, 32, 32), np.uint8)
    with pytest.raises(BackendError, match=r"the NumPy reference has no implementation for "
                                           r"node type Negate \(op 'negate'\)"):
        deploy.run(net, x)
    with pytest.raises(BackendError, match="the PULP C emitter has no implementation for node "
                                           "type Negate"):
        emit(net, tmp_path, reference_input=x[0])
    sub = _net(WideMaxPool(name="p", input="input", kernel=2, stride=2))
    with pytest.raises(BackendError, match="node type WideMaxPool"):
        deploy.run(sub, x)


def test_adding_a_node_is_one_function_per_backend() -> None:
    ref: Backend[np.ndarray] = Backend("test backend")
    ref.register(Negate)(lambda node, ins, infos: (255 - ins[0]).astype(np.uint8))
    x = np.arange(4, dtype=np.uint8).reshape(1, 1, 2, 2)
    node = Negate(name="neg", input="input")
    assert ref(node, [x], []).ravel().tolist() == [255, 254, 253, 252]
    assert ref.missing([Negate, MaxPool]) == ["MaxPool"]


def test_registration_is_checked() -> None:
    b: Backend[int] = Backend("test backend")
    b.register(MaxPool)(lambda node: 1)
    with pytest.raises(BackendError, match="test backend: node type MaxPool is already "
                                           "registered"):
        b.register(MaxPool)(lambda node: 2)
    with pytest.raises(TypeError, match="expected IR node types, got <class 'int'>"):
        b.register(int)  # type: ignore[arg-type]
    assert b(MaxPool(name="p", input="x", kernel=(2, 2), stride=(2, 2))) == 1
