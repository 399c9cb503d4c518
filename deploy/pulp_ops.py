"""The PULP C emitter backend: one function per IR node type giving its template context.

Each function takes ``(node, ctx)`` with an :class:`EmitContext` and returns the node's kernel,
kernel arguments, parameter record and arrays, which ``layer.c.j2`` renders; the driver is
:func:`deploy.emit_pulp.emit`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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
    _Layer,
)
from deploy.kernels import im2col_bytes
from hwlib.blocks import block_index, describe

PULP: Backend[dict[str, Any]] = Backend("PULP C emitter")

_U8_IN, _U8_OUT = "(const uint8_t *)a->in0", "(uint8_t *)a->out"


@dataclass(frozen=True, kw_only=True)
class EmitContext:
    """What a node's C context needs besides the node.

    Attributes:
        fn: the C name of the layer function (``<prefix>_<node>``), prefix of its arrays.
        prefix: the firmware's global symbol prefix.
        out: the node's output info.
        ins: its inputs' infos.
        luts: the lookup tables emitted so far, by spec (a table is added on first use).
    """

    fn: str
    prefix: str
    out: TensorInfo
    ins: tuple[TensorInfo, ...]
    luts: dict[str, dict[str, Any]]


def _rq(rq: Requant | None) -> dict[str, Any] | None:
    if rq is None:
        return None
    return {"mult": rq.mult, "shift": rq.shift, "zp_out": rq.zp_out, "lo": rq.lo, "hi": rq.hi}


def _multiplier(spec: str, prefix: str, luts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    m = hwlib.get(spec)
    if isinstance(m, hwlib.marlin.Marlin):
        return {"kind": "marlin", "init": "{ NN_MUL_MARLIN, 0, 0, 0, 0, 0 }", "spec": spec,
                "level": m.level, "word": hwlib.marlin.csr_word(m.level)}
    if m.is_exact:
        return {"kind": "exact", "init": "{ NN_MUL_EXACT, 0, 0, 0, 0, 0 }", "spec": spec}
    if spec not in luts:
        tag = f"mul{len(luts)}_{re.sub(r'[^A-Za-z0-9_]', '_', spec)}"
        table = m.table().T             # one row of products per weight value
        luts[spec] = {
            "spec": spec, "fn": f"{prefix}_{tag}", "header": f"{tag}.h", "source": f"{tag}.c",
            "guard": f"{prefix}_{tag}_H".upper(), "table": np.ascontiguousarray(table).ravel(),
            "rows": table.shape[0], "cols": table.shape[1], "xlo": m.x_domain.lo,
            "xhi": m.x_domain.hi, "wlo": m.w_domain.lo, "whi": m.w_domain.hi,
            "ctype": "int16_t" if int(np.abs(table).max()) <= 32767 else "int32_t"}
    lut = luts[spec]
    t16, t32 = ((f"{lut['fn']}_table", "0") if lut["ctype"] == "int16_t"
                else ("0", f"{lut['fn']}_table"))
    return {"kind": "table", "spec": spec, "header": lut["header"],
            "init": f"{{ NN_MUL_TABLE, {t16}, {t32}, {lut['xlo']}, {lut['wlo']}, "
                    f"{lut['cols']} }}"}


def _channel_init(m: dict[str, Any]) -> str:
    """The ``nn_mul_t`` initialiser of a per-channel table entry: the multiplier's, with its CSR
    level word last (MARLIN; else 0)."""
    word = f"{m['word']:#010x}u" if m["kind"] == "marlin" else "0u"
    return m["init"].removesuffix(" }") + f", {word} }}"


def _layer_mul(node: _Layer, ctx: EmitContext) -> dict[str, Any]:
    """The layer's multiplier context: one spec's, or for output-channel groups a ``kind``
    ``"blocks"`` record with one ``nn_mul_t`` entry per output channel (``per_channel``), whose
    MARLIN levels the kernel writes to the CSR where the level changes between channel blocks
    (for (output, input) kernel blocks of ``in_group`` input channels, one row of entries per
    input group, group-major, and the kernel writes between the groups' reduction segments);
    the layer's own ``init`` is MARLIN's when a channel uses MARLIN (the kernel call enables the
    SIMD route once), else exact's."""
    spec = node.multiplier
    if isinstance(spec, str):
        return _multiplier(spec, ctx.prefix, ctx.luts)
    in_group = spec[0].inp[1] - spec[0].inp[0] if spec[0].inp is not None else 0
    specs, index = block_index(spec, node.out_channels,
                               node.weight.shape[1] if in_group else 1)
    muls = [_multiplier(s, ctx.prefix, ctx.luts) for s in specs]
    routed = any(m["kind"] == "marlin" for m in muls)
    rows = index[:, ::in_group].T.ravel() if in_group else index[:, 0]  # group-major
    return {"kind": "blocks", "spec": describe(spec), "in_group": in_group,
            "init": f"{{ {'NN_MUL_MARLIN' if routed else 'NN_MUL_EXACT'}, 0, 0, 0, 0, 0 }}",
            "per_channel": [{"spec": muls[k]["spec"], "init": _channel_init(muls[k])}
                            for k in rows],
            "headers": sorted({m["header"] for m in muls if m["kind"] == "table"})}


def _block_params(mul: dict[str, Any], fn: str, cout: int) -> dict[str, Any]:
    """The kernel parameters of a block-wise layer's multipliers: the per-channel table and,
    for kernel blocks, the input group size and the table's row stride (none otherwise)."""
    if mul["kind"] != "blocks":
        return {}
    kernel = {"in_group": mul["in_group"], "mul_ld": cout} if mul["in_group"] else {}
    return {"mul_of": f"{fn}_mul_of", **kernel}


@PULP.register(Conv)
def _conv(node: Conv, ctx: EmitContext) -> dict[str, Any]:
    src, fn = ctx.ins[0], ctx.fn
    cout, cin_g, kh, kw = node.weight.shape
    (c, h, w), (_, ho, wo) = src.shape, ctx.out.shape
    mul = _layer_mul(node, ctx)
    params = dict(h=h, w=w, cin=c, ho=ho, wo=wo, cout=cout, kh=kh, kw=kw,
                  sy=node.stride[0], sx=node.stride[1], pt=node.padding[0],
                  pl=node.padding[2], groups=node.groups, zp=src.zero_point,
                  weight=f"{fn}_weight", bias=f"{fn}_bias", col=f"{fn}_col",
                  **_block_params(mul, fn, cout))
    return dict(kernel="nn_conv", kernel_args=f"{_U8_IN}, a->out", params_type="nn_conv_t",
                params=params, col_bytes=im2col_bytes(cin_g * kh * kw),
                weight=node.weight.transpose(0, 2, 3, 1).ravel(), bias=node.bias,
                mul=mul, requant=_rq(node.requant),
                summary=f"{src.shape} -> {ctx.out.shape}, {kh}x{kw} stride {node.stride} "
                        f"padding {node.padding} groups {node.groups}, {mul['spec']}")


@PULP.register(Linear)
def _linear(node: Linear, ctx: EmitContext) -> dict[str, Any]:
    mul = _layer_mul(node, ctx)
    params = dict(fan_in=node.fan_in, cout=node.out_channels, weight=f"{ctx.fn}_weight",
                  bias=f"{ctx.fn}_bias", **_block_params(mul, ctx.fn, node.out_channels))
    return dict(kernel="nn_linear", kernel_args=f"{_U8_IN}, a->out",
                params_type="nn_linear_t", params=params, weight=node.weight.ravel(),
                bias=node.bias, mul=mul, requant=_rq(node.requant),
                summary=f"{node.fan_in} -> {node.out_channels}, {mul['spec']}"
                        + ("" if node.requant else ", int32 outputs"))


def _pool(ctx: EmitContext, kind: str, kernel: tuple[int, int], stride: tuple[int, int],
          padding: tuple[int, int, int, int], rq: Requant | None) -> dict[str, Any]:
    (c, h, w), (_, ho, wo) = ctx.ins[0].shape, ctx.out.shape
    params = dict(h=h, w=w, c=c, ho=ho, wo=wo, kh=kernel[0], kw=kernel[1], sy=stride[0],
                  sx=stride[1], pt=padding[0], pl=padding[2])
    return dict(kernel=kind, kernel_args=f"{_U8_IN}, {_U8_OUT}", params_type="nn_pool_t",
                params=params, requant=_rq(rq),
                summary=f"kernel {tuple(kernel)} stride {tuple(stride)} padding {padding}")


@PULP.register(MaxPool)
def _maxpool(node: MaxPool, ctx: EmitContext) -> dict[str, Any]:
    return _pool(ctx, "nn_maxpool", node.kernel, node.stride, node.padding, None)


@PULP.register(AvgPool)
def _avgpool(node: AvgPool, ctx: EmitContext) -> dict[str, Any]:
    return _pool(ctx, "nn_avgpool", node.kernel, node.stride, (0, 0, 0, 0), node.requant)


@PULP.register(GlobalAvgPool)
def _global_avgpool(node: GlobalAvgPool, ctx: EmitContext) -> dict[str, Any]:
    _, h, w = ctx.ins[0].shape
    return _pool(ctx, "nn_avgpool", (h, w), (1, 1), (0, 0, 0, 0), node.requant)


@PULP.register(Add)
def _add(node: Add, ctx: EmitContext) -> dict[str, Any]:
    params = dict(n=ctx.out.size, mult_a=node.mult_a, mult_b=node.mult_b, shift=node.shift,
                  zp_a=node.zp_a, zp_b=node.zp_b, zp_out=node.zp_out, lo=node.lo, hi=node.hi)
    return dict(kernel="nn_add", params_type="nn_add_t", params=params,
                kernel_args=f"{_U8_IN}, (const uint8_t *)a->in1, {_U8_OUT}",
                summary=f"(({node.a} - {node.zp_a}) * {node.mult_a} + ({node.b} - "
                        f"{node.zp_b}) * {node.mult_b}) >> {node.shift}, + {node.zp_out}, "
                        f"clip {node.lo}..{node.hi}")


@PULP.register(Flatten)
def _flatten(node: Flatten, ctx: EmitContext) -> dict[str, Any]:
    c, h, w = ctx.ins[0].shape
    return dict(kernel="nn_flatten", kernel_args=f"{_U8_IN}, {_U8_OUT}",
                params_type="nn_elementwise_t", params=dict(n=c * h * w, c=c, h=h, w=w),
                summary=f"{ctx.ins[0].shape} -> {ctx.out.shape}, HWC to CHW order")


@PULP.register(Requantize)
def _requantize(node: Requantize, ctx: EmitContext) -> dict[str, Any]:
    return dict(kernel="nn_requantize", kernel_args=f"(const int32_t *)a->in0, {_U8_OUT}",
                params_type="nn_elementwise_t",
                params=dict(n=ctx.out.size, c=ctx.out.shape[0], h=1, w=1),
                requant=_rq(node.requant), summary="int32 -> uint8")
