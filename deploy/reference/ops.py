"""The NumPy reference backend: one function per IR node type, each calling its kernel.

Every function takes ``(node, ins, infos)``: the node, its input arrays (batch first) and its
inputs' TensorInfo, and returns the node's output (uint8 activations or int32 accumulators).
"""
from __future__ import annotations

import numpy as np

import hwlib
from deploy.backend import Backend
from deploy.infer import TensorInfo
from deploy.ir import (
    Add,
    AvgPool,
    Conv,
    Flatten,
    GlobalAvgPool,
    Linear,
    MaxPool,
    Requant,
    Requantize,
)
from deploy.reference.add import add
from deploy.reference.avgpool import avgpool
from deploy.reference.blocks import conv2d_blocks, linear_blocks
from deploy.reference.conv import conv2d
from deploy.reference.linear import linear
from deploy.reference.maxpool import maxpool
from deploy.reference.requant import requantize

REFERENCE: Backend[np.ndarray] = Backend("NumPy reference")

Arrays = list[np.ndarray]
Infos = list[TensorInfo]


def _rq(acc: np.ndarray, rq: Requant | None) -> np.ndarray:
    if rq is None:
        return acc.astype(np.int32)
    return requantize(acc, rq.mult, rq.shift, rq.zp_out, rq.lo, rq.hi)


@REFERENCE.register(Conv)
def _conv(node: Conv, ins: Arrays, infos: Infos) -> np.ndarray:
    if isinstance(node.multiplier, str):
        acc = conv2d(ins[0], node.weight, node.bias, hwlib.get(node.multiplier), node.stride,
                     node.padding, node.groups, infos[0].zero_point)
    else:
        acc = conv2d_blocks(ins[0], node.weight, node.bias, node.multiplier, node.stride,
                            node.padding, node.groups, infos[0].zero_point)
    return _rq(acc, node.requant)


@REFERENCE.register(Linear)
def _linear(node: Linear, ins: Arrays, infos: Infos) -> np.ndarray:
    if isinstance(node.multiplier, str):
        acc = linear(ins[0], node.weight, node.bias, hwlib.get(node.multiplier))
    else:
        acc = linear_blocks(ins[0], node.weight, node.bias, node.multiplier)
    return _rq(acc, node.requant)


@REFERENCE.register(MaxPool)
def _maxpool(node: MaxPool, ins: Arrays, infos: Infos) -> np.ndarray:
    return maxpool(ins[0], node.kernel, node.stride, node.padding)


@REFERENCE.register(AvgPool)
def _avgpool(node: AvgPool, ins: Arrays, infos: Infos) -> np.ndarray:
    rq = node.requant
    return avgpool(ins[0], node.kernel, node.stride, rq.mult, rq.shift, rq.zp_out, rq.lo, rq.hi)


@REFERENCE.register(GlobalAvgPool)
def _global_avgpool(node: GlobalAvgPool, ins: Arrays, infos: Infos) -> np.ndarray:
    rq = node.requant
    _, h, w = infos[0].shape
    return avgpool(ins[0], (h, w), (1, 1), rq.mult, rq.shift, rq.zp_out, rq.lo, rq.hi)


@REFERENCE.register(Add)
def _add(node: Add, ins: Arrays, infos: Infos) -> np.ndarray:
    return add(ins[0], ins[1], node.mult_a, node.mult_b, node.shift, node.zp_a, node.zp_b,
               node.zp_out, node.lo, node.hi)


@REFERENCE.register(Flatten)
def _flatten(node: Flatten, ins: Arrays, infos: Infos) -> np.ndarray:
    return ins[0].reshape(ins[0].shape[0], -1)


@REFERENCE.register(Requantize)
def _requantize(node: Requantize, ins: Arrays, infos: Infos) -> np.ndarray:
    return _rq(ins[0], node.requant)
