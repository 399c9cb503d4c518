"""Emit a PMSIS application (HWC layout, int32 accumulation, MARLIN CSR writes) from a Network.

The context handed to the templates is built here from the IR; the templates only loop and
branch. Every file goes through :func:`deploy.render.render_to` (atomic writes).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import hwlib
from deploy.errors import IRError
from deploy.ir import (
    Add, AvgPool, Conv, Flatten, GlobalAvgPool, Linear, MaxPool, Node, Requant, Requantize,
)
from deploy.network import Network
from deploy.reference import run
from deploy.render import render_to
from deploy.target import Target, default_target

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
SHARED_FILES = ("marlin_hal.h", "marlin_hal.c", "nn_kernels.h", "nn_kernels.c")


@dataclass(frozen=True)
class EmittedLayer:
    """One node's output buffer in the generated code.

    Attributes:
        name: the IR node name.
        op: the IR op.
        fn: the C layer function (empty for the input).
        dtype: ``"uint8"`` or ``"int32"``.
        shape: the IR shape (``(C, H, W)`` or ``(F,)``); the buffer holds it in HWC order.
        multiplier: the layer's spec (approximable layers only).
        csr_word: the CSR 0x7D0 word written at the start of the layer (MARLIN layers only).
        source: the layer's C file (empty for the input).
    """

    name: str
    op: str
    fn: str
    dtype: str
    shape: tuple[int, ...]
    multiplier: str | None = None
    csr_word: int | None = None
    source: str = ""


@dataclass(frozen=True, eq=False)
class Firmware:
    """A generated application directory.

    Attributes:
        directory: where the files are.
        prefix: C prefix of every global symbol (several networks can share one program).
        network: the network name.
        layers: every node's buffer, in execution order (the input first).
        sources: the C sources of the network itself (no main.c, no shared HAL files).
        reference_input: the uint8 sample (C, H, W) embedded in ``input_data.c``.
        activation_bytes: static output buffers of every node (no reuse between layers).
        parameter_bytes: weights, biases, requant parameters, im2col buffers and tables.
    """

    directory: Path
    prefix: str
    network: str
    layers: tuple[EmittedLayer, ...]
    sources: tuple[str, ...]
    reference_input: np.ndarray
    activation_bytes: int
    parameter_bytes: int

    @property
    def input_bytes(self) -> int:
        """Bytes of one input sample."""
        return int(np.prod(self.layers[0].shape))


def check_prefix(prefix: str) -> str:
    """``prefix`` after checking it is a C identifier of at most 32 characters."""
    if not isinstance(prefix, str) or not _IDENT.match(prefix):
        raise IRError(f"firmware prefix: expected a C identifier of 1..32 characters, got "
                      f"{prefix!r}")
    return prefix


def _c_names(net: Network) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in net.nodes:
        base = re.sub(r"[^A-Za-z0-9_]", "_", node.name)
        base = base if re.match(r"[A-Za-z_]", base) else f"n_{base}"
        name, i = base, 2
        while name in out.values():
            name, i = f"{base}_{i}", i + 1
        out[node.name] = name
    return out


def _rq(rq: Requant | None) -> dict[str, Any] | None:
    if rq is None:
        return None
    return {"mult": rq.mult, "shift": rq.shift, "zp_out": rq.zp_out, "lo": rq.lo, "hi": rq.hi}


def _multiplier(spec: str, prefix: str, luts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    m = hwlib.get(spec)
    if isinstance(m, hwlib.marlin.Marlin):
        return {"kind": "marlin", "enum": "NN_MUL_MARLIN", "fn": "0", "spec": spec,
                "level": m.level, "word": hwlib.marlin.csr_word(m.level)}
    if m.is_exact:
        return {"kind": "exact", "enum": "NN_MUL_EXACT", "fn": "0", "spec": spec}
    if spec not in luts:
        tag = f"mul{len(luts)}_{re.sub(r'[^A-Za-z0-9_]', '_', spec)}"
        table = m.table()
        luts[spec] = {
            "spec": spec, "fn": f"{prefix}_{tag}", "header": f"{tag}.h", "source": f"{tag}.c",
            "guard": f"{prefix}_{tag}_H".upper(), "table": table.ravel(),
            "rows": table.shape[0], "cols": table.shape[1], "xlo": m.x_domain.lo,
            "xhi": m.x_domain.hi, "wlo": m.w_domain.lo, "whi": m.w_domain.hi,
            "ctype": "int16_t" if int(np.abs(table).max()) <= 32767 else "int32_t"}
    lut = luts[spec]
    return {"kind": "function", "enum": "NN_MUL_FUNCTION", "fn": lut["fn"], "spec": spec,
            "header": lut["header"]}


_U8_IN, _U8_OUT = "(const uint8_t *)a->in0", "(uint8_t *)a->out"


def _op_context(net: Network, node: Node, fn: str, prefix: str,
                luts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Kernel, kernel arguments, parameter record and arrays of one node."""
    shape = net.infos[node.name].shape
    src = net.infos[node.inputs[0]] if node.inputs else None
    if isinstance(node, Conv):
        assert src is not None
        cout, cin_g, kh, kw = node.weight.shape
        (c, h, w), (_, ho, wo) = src.shape, shape
        params = dict(h=h, w=w, cin=c, ho=ho, wo=wo, cout=cout, kh=kh, kw=kw,
                      sy=node.stride[0], sx=node.stride[1], pt=node.padding[0],
                      pl=node.padding[2], groups=node.groups, zp=src.zero_point,
                      weight=f"{fn}_weight", bias=f"{fn}_bias", col=f"{fn}_col")
        return dict(kernel="nn_conv", kernel_args=f"{_U8_IN}, a->out", params_type="nn_conv_t",
                    params=params, k=cin_g * kh * kw,
                    weight=node.weight.transpose(0, 2, 3, 1).ravel(), bias=node.bias,
                    mul=_multiplier(node.multiplier, prefix, luts), requant=_rq(node.requant),
                    summary=f"{src.shape} -> {shape}, {kh}x{kw} stride {node.stride} padding "
                            f"{node.padding} groups {node.groups}, {node.multiplier}")
    if isinstance(node, Linear):
        params = dict(fan_in=node.fan_in, cout=node.out_channels, weight=f"{fn}_weight",
                      bias=f"{fn}_bias")
        return dict(kernel="nn_linear", kernel_args=f"{_U8_IN}, a->out",
                    params_type="nn_linear_t", params=params, weight=node.weight.ravel(),
                    bias=node.bias, mul=_multiplier(node.multiplier, prefix, luts),
                    requant=_rq(node.requant),
                    summary=f"{node.fan_in} -> {node.out_channels}, {node.multiplier}"
                            + ("" if node.requant else ", int32 outputs"))
    if isinstance(node, (MaxPool, AvgPool, GlobalAvgPool)):
        assert src is not None
        (c, h, w), (_, ho, wo) = src.shape, shape
        if isinstance(node, GlobalAvgPool):
            kernel, stride, padding = (h, w), (1, 1), (0, 0, 0, 0)
        else:
            kernel, stride = node.kernel, node.stride
            padding = node.padding if isinstance(node, MaxPool) else (0, 0, 0, 0)
        params = dict(h=h, w=w, c=c, ho=ho, wo=wo, kh=kernel[0], kw=kernel[1], sy=stride[0],
                      sx=stride[1], pt=padding[0], pl=padding[2])
        kind = "nn_maxpool" if isinstance(node, MaxPool) else "nn_avgpool"
        return dict(kernel=kind, kernel_args=f"{_U8_IN}, {_U8_OUT}", params_type="nn_pool_t",
                    params=params, requant=_rq(getattr(node, "requant", None)),
                    summary=f"kernel {tuple(kernel)} stride {tuple(stride)} padding {padding}")
    if isinstance(node, Add):
        params = dict(n=net.infos[node.name].size, mult_a=node.mult_a, mult_b=node.mult_b,
                      shift=node.shift, zp_a=node.zp_a, zp_b=node.zp_b, zp_out=node.zp_out,
                      lo=node.lo, hi=node.hi)
        return dict(kernel="nn_add", params_type="nn_add_t", params=params,
                    kernel_args=f"{_U8_IN}, (const uint8_t *)a->in1, {_U8_OUT}",
                    summary=f"(({node.a} - {node.zp_a}) * {node.mult_a} + ({node.b} - "
                            f"{node.zp_b}) * {node.mult_b}) >> {node.shift}, + {node.zp_out}, "
                            f"clip {node.lo}..{node.hi}")
    if isinstance(node, Flatten):
        assert src is not None
        c, h, w = src.shape
        return dict(kernel="nn_flatten", kernel_args=f"{_U8_IN}, {_U8_OUT}",
                    params_type="nn_elementwise_t", params=dict(n=c * h * w, c=c, h=h, w=w),
                    summary=f"{src.shape} -> {shape}, HWC to CHW order")
    if isinstance(node, Requantize):
        return dict(kernel="nn_requantize", kernel_args=f"(const int32_t *)a->in0, {_U8_OUT}",
                    params_type="nn_elementwise_t",
                    params=dict(n=net.infos[node.name].size, c=shape[0], h=1, w=1),
                    requant=_rq(node.requant), summary="int32 -> uint8")
    raise IRError(f"{node.owner}: the C emitter has no kernel for op {node.op!r}")


def _node_context(net: Network, node: Node, cnames: dict[str, str], prefix: str,
                  luts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    info = net.infos[node.name]
    cname = cnames[node.name]
    fn = f"{prefix}_{cname}"
    ctx: dict[str, Any] = {
        "name": node.name, "op": node.op, "fn": fn if node.inputs else "",
        "header": f"layer_{cname}.h", "source": f"layer_{cname}.c",
        "guard": f"{prefix}_LAYER_{cname}_H".upper(), "buf": f"{prefix}_buf_{cname}",
        "out_type": "int32_t" if info.dtype == "int32" else "uint8_t",
        "elem_bytes": 4 if info.dtype == "int32" else 1, "elems": info.size,
        "shape_text": " x ".join(map(str, info.shape))
        + (" (CHW, stored HWC)" if len(info.shape) == 3 else ""),
        "in0": f"{prefix}_buf_{cnames[node.inputs[0]]}" if node.inputs else "0",
        "in1": f"{prefix}_buf_{cnames[node.inputs[1]]}" if len(node.inputs) > 1 else "0",
        "mul": None, "requant": None, "weight": None, "dtype": info.dtype, "shape": info.shape,
    }
    if node.inputs:
        ctx.update(_op_context(net, node, fn, prefix, luts))
        ctx["params"] = list(ctx["params"].items())
    return ctx


def _parameter_bytes(layers: list[dict[str, Any]], luts: dict[str, dict[str, Any]],
                     cores: int) -> int:
    total = 0
    for c in layers:
        if c["weight"] is not None:
            total += c["weight"].size + 4 * c["bias"].size
        if c["requant"]:
            total += 5 * c["requant"]["mult"].size
        if c["op"] == "conv":
            total += cores * c["k"]
    return total + sum(t["table"].size * (2 if t["ctype"] == "int16_t" else 4)
                       for t in luts.values())


def _hwc(a: np.ndarray) -> np.ndarray:
    return a.transpose(1, 2, 0) if a.ndim == 3 else a


def emit(net: Network, out_dir: str | os.PathLike[str], prefix: str = "net",
         reference_input: np.ndarray | None = None, target: Target | None = None) -> Firmware:
    """Write the PMSIS application of ``net`` into ``out_dir``.

    Args:
        net: the integer network (already validated by construction).
        out_dir: the firmware directory (created; stale generated layer files are removed).
        prefix: C identifier prefixed to every global symbol.
        reference_input: one uint8 sample (C, H, W) embedded for the on-target checksum run
            (zeros when None).
        target: target facts (``deploy/data/target.json`` by default).

    Returns:
        The Firmware record.
    """
    prefix = check_prefix(prefix)
    target = target or default_target()
    shape = net.input.shape
    x = np.zeros(shape, np.uint8) if reference_input is None else np.asarray(reference_input)
    if x.shape != shape:
        raise IRError(f"emit({net.name!r}): reference_input expected shape {shape}, got "
                      f"{x.shape}")
    outs = run(net, x[None])
    cnames = _c_names(net)
    luts: dict[str, dict[str, Any]] = {}
    layers = [_node_context(net, n, cnames, prefix, luts) for n in net.nodes]
    for ctx in layers:
        ctx["checksum"] = int(outs[ctx["name"]].astype(np.int64).sum()) % 2**32
    net_ctx = {"name": net.name, "prefix": prefix, "macro": prefix.upper(),
               "guard": f"{prefix.upper()}_NETWORK_H", "layers": layers,
               "input_bytes": int(np.prod(shape)), "input": _hwc(x).ravel()}
    facts = {"platform": target.platform, "num_cores": target.num_cores,
             "csr": f"0x{target.csr_address:X}", "enable_bits": target.csr_enable_bits}

    out = Path(out_dir)
    sources = ["network.c"]
    for ctx in layers[1:]:
        render_to(out / ctx["header"], "layer.h.j2", L=ctx)
        render_to(out / ctx["source"], "layer.c.j2", L=ctx)
        sources.append(ctx["source"])
    for lut in luts.values():
        render_to(out / lut["header"], "lut.h.j2", mul=lut)
        render_to(out / lut["source"], "lut.c.j2", mul=lut)
        sources.append(lut["source"])
    for name in SHARED_FILES:
        render_to(out / name, f"{name}.j2", **facts)
    render_to(out / "network.h", "network.h.j2", net=net_ctx)
    render_to(out / "network.c", "network.c.j2", net=net_ctx)
    render_to(out / "input_data.h", "input_data.h.j2", net=net_ctx)
    render_to(out / "input_data.c", "input_data.c.j2", net=net_ctx)
    render_to(out / "main.c", "main.c.j2", networks=[{"prefix": prefix, "header": "network.h"}])
    all_sources = ["main.c", *sources, "input_data.c", "marlin_hal.c", "nn_kernels.c"]
    render_to(out / "Makefile", "Makefile.j2", net=net_ctx, sources=all_sources, **facts)
    keep = {*all_sources, *(c["header"] for c in layers), *(lut["header"] for lut in luts.values())}
    for stale in [*out.glob("layer_*.[ch]"), *out.glob("mul*_*.[ch]")]:
        if stale.name not in keep:
            stale.unlink()
    emitted = tuple(EmittedLayer(
        name=c["name"], op=c["op"], fn=c["fn"], dtype=c["dtype"], shape=tuple(c["shape"]),
        multiplier=c["mul"]["spec"] if c["mul"] else None,
        csr_word=c["mul"]["word"] if c["mul"] and c["mul"]["kind"] == "marlin" else None,
        source=c["source"] if c["fn"] else "")
        for c in layers)
    return Firmware(directory=out, prefix=prefix, network=net.name, layers=emitted,
                    sources=tuple(sources), reference_input=x.astype(np.uint8),
                    activation_bytes=sum(c["elems"] * c["elem_bytes"] for c in layers),
                    parameter_bytes=_parameter_bytes(layers, luts, target.num_cores))
