"""Run a Network on a batch with the reference kernels, keeping every node's output."""
from __future__ import annotations

import numpy as np

import hwlib
from deploy.errors import IRError
from deploy.ir import (
    Add, AvgPool, Conv, Flatten, GlobalAvgPool, Input, Linear, MaxPool, Node, Requant, Requantize,
)
from deploy.network import Network
from deploy.reference.add import add
from deploy.reference.avgpool import avgpool
from deploy.reference.conv import conv2d
from deploy.reference.linear import linear
from deploy.reference.maxpool import maxpool
from deploy.reference.requant import requantize


def _rq(acc: np.ndarray, rq: Requant | None) -> np.ndarray:
    if rq is None:
        return acc.astype(np.int32)
    return requantize(acc, rq.mult, rq.shift, rq.zp_out, rq.lo, rq.hi)


def _step(node: Node, ins: list[np.ndarray], zps: list[int]) -> np.ndarray:
    if isinstance(node, Conv):
        acc = conv2d(ins[0], node.weight, node.bias, hwlib.get(node.multiplier), node.stride,
                     node.padding, node.groups, zps[0])
        return _rq(acc, node.requant)
    if isinstance(node, Linear):
        return _rq(linear(ins[0], node.weight, node.bias, hwlib.get(node.multiplier)),
                   node.requant)
    if isinstance(node, MaxPool):
        return maxpool(ins[0], node.kernel, node.stride, node.padding)
    if isinstance(node, (AvgPool, GlobalAvgPool)):
        rq = node.requant
        assert rq is not None
        kernel = node.kernel if isinstance(node, AvgPool) else ins[0].shape[2:]
        stride = node.stride if isinstance(node, AvgPool) else (1, 1)
        return avgpool(ins[0], kernel, stride, rq.mult, rq.shift, rq.zp_out, rq.lo, rq.hi)
    if isinstance(node, Add):
        return add(ins[0], ins[1], node.mult_a, node.mult_b, node.shift, node.zp_a, node.zp_b,
                   node.zp_out, node.lo, node.hi)
    if isinstance(node, Flatten):
        return ins[0].reshape(ins[0].shape[0], -1)
    if isinstance(node, Requantize):
        assert node.requant is not None
        return _rq(ins[0], node.requant)
    raise IRError(f"{node.owner}: the reference has no kernel for op {node.op!r}")


def run(net: Network, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every node's output for the batch ``x``.

    Args:
        net: the integer network.
        x: uint8-valued integers (N, C, H, W) matching the Input node's shape.

    Returns:
        ``{node name: array}`` in execution order, the input included: uint8 (N, C, H, W) or
        (N, F) activations, int32 accumulators/logits.
    """
    inp: Input = net.input
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise IRError(f"run({net.name!r}): input expected integers, got dtype {a.dtype}")
    if a.ndim != 4 or a.shape[1:] != inp.shape:
        dims = ", ".join(map(str, inp.shape))
        raise IRError(f"run({net.name!r}): input expected shape (N, {dims}), got {a.shape}")
    if a.size and (int(a.min()) < inp.lo or int(a.max()) > inp.hi):
        raise IRError(f"run({net.name!r}): input expected values in {inp.lo}..{inp.hi}, got "
                      f"[{int(a.min())}, {int(a.max())}]")
    outs: dict[str, np.ndarray] = {inp.name: a.astype(np.uint8)}
    for node in net.nodes[1:]:
        ins = [outs[s] for s in node.inputs]
        outs[node.name] = _step(node, ins, [net.infos[s].zero_point for s in node.inputs])
    return outs
