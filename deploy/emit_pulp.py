"""Emit a PMSIS application (HWC layout, int32 accumulation, MARLIN CSR writes) from a Network.

The context handed to the templates is built here from the IR; the templates only loop and
branch. Every file goes through :func:`deploy.render.render_to` (atomic writes).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deploy.errors import IRError
from deploy.ir import Node, _Layer
from deploy.memplan import MemoryPlan, parameter_layout, plan_memory
from deploy.network import Network
from deploy.pulp_ops import PULP, EmitContext, _multiplier, _rq
from deploy.reference import run
from deploy.render import render_to
from deploy.target import Target, default_target
from deploy.tiling import TilingPlan, plan_tiling

if TYPE_CHECKING:
    from deploy.points import PointNetwork

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
        multiplier: the layer's spec (approximable layers only); for output-channel groups,
            each spec with its filter count (``"marlin:3 x 8, marlin:40 x 8"``).
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
        activation_bytes: the activation arena every node's output lives in (the memory
            plan's liveness reuse).
        parameter_bytes: L2 bytes of the weights, biases and requant parameters kept in L2, the
            staging buffer of those streamed from L3, the im2col buffers of untiled convolutions
            and the tables.
        plan: the memory plan the arena offsets come from.
        tiling: the L1 tiling plan of every layer.
    """

    directory: Path
    prefix: str
    network: str
    layers: tuple[EmittedLayer, ...]
    sources: tuple[str, ...]
    reference_input: np.ndarray
    activation_bytes: int
    parameter_bytes: int
    plan: MemoryPlan = field(repr=False)
    tiling: TilingPlan = field(repr=False)

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
    """A C identifier per node, unique ignoring case: include guards are upper-cased and file
    names may land on a case-insensitive file system."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for node in net.nodes:
        base = re.sub(r"[^A-Za-z0-9_]", "_", node.name)
        base = base if re.match(r"[A-Za-z_]", base) else f"n_{base}"
        name, i = base, 2
        while name.lower() in taken:
            name, i = f"{base}_{i}", i + 1
        out[node.name] = name
        taken.add(name.lower())
    return out


_TILED_PARAMS = ("nn_conv_t", "nn_linear_t", "nn_pool_t", "nn_add_t")


def _node_context(net: Network, node: Node, cnames: dict[str, str], prefix: str,
                  luts: dict[str, dict[str, Any]], plan: MemoryPlan,
                  tiling: TilingPlan, points: PointNetwork | None = None) -> dict[str, Any]:
    info = net.infos[node.name]
    cname = cnames[node.name]
    fn = f"{prefix}_{cname}"
    buf = plan.buffer(node.name)
    ins = [plan.buffer(s) for s in node.inputs]
    ctx: dict[str, Any] = {
        "name": node.name, "op": node.op, "fn": fn if node.inputs else "",
        "header": f"layer_{cname}.h", "source": f"layer_{cname}.c",
        "guard": f"{prefix}_LAYER_{cname}_H".upper(), "buf": f"({prefix}_arena + {buf.offset}u)",
        "offset": buf.offset, "bytes": buf.size, "step": buf.first,
        "exposed": [(b.offset, b.size) for b in (*ins, buf)],
        "out_type": "int32_t" if info.dtype == "int32" else "uint8_t",
        "elem_bytes": 4 if info.dtype == "int32" else 1, "elems": info.size,
        "shape_text": " x ".join(map(str, info.shape))
        + (" (CHW, stored HWC)" if len(info.shape) == 3 else ""),
        "in0": f"({prefix}_arena + {ins[0].offset}u)" if ins else "0",
        "in1": f"({prefix}_arena + {ins[1].offset}u)" if len(ins) > 1 else "0",
        "mul": None, "requant": None, "weight": None, "dtype": info.dtype, "shape": info.shape,
    }
    if node.inputs:
        ctx.update(PULP(node, EmitContext(fn=fn, prefix=prefix, out=info, luts=luts,
                                          ins=tuple(net.infos[s] for s in node.inputs))))
        t = tiling.layer(node.name)
        if ctx["params_type"] in _TILED_PARAMS:
            x, w, y = t.regions
            stage = (f"{prefix}_staging" if isinstance(node, _Layer)
                     and plan.placement(node.name) == "L3 tiles" else "0")
            ctx["params"]["tile"] = (f"{{ {t.tile_rows}, {t.tile_channels}, {t.chunk}, "
                                     f"{t.sets}, {x}, {w}, {y}, {stage} }}" if t.tiled
                                     else "{ 0, 0, 0, 0, 0, 0, 0, 0 }")
        if "col" in ctx["params"] and t.tiled:       # tiled convs keep their im2col in L1
            ctx["params"]["col"], ctx["col_bytes"] = "0", 0
        ctx["rq_mult"], ctx["rq_shift"], ctx["l3"] = f"{fn}_mult", f"{fn}_shift", None
        ctx["l3_tiles"] = None
        if isinstance(node, _Layer) and plan.placement(node.name) == "L3 tiles":
            ctx["l3_tiles"] = {"staging": f"{prefix}_staging"}
            ctx["summary"] += (f"; weights streamed from L3 per tile ({t.weight_tile_bytes} B "
                               f"slot per core)")
        if isinstance(node, _Layer) and plan.placement(node.name) == "L3":
            lay, staging = parameter_layout(node), f"{prefix}_staging"
            ctx["l3"] = {"staging": staging, **lay}
            ctx["params"]["weight"] = f"(const int8_t *)({staging} + {lay['weight']}u)"
            ctx["params"]["bias"] = f"(const int32_t *)({staging} + {lay['bias']}u)"
            ctx["rq_mult"] = f"(const int32_t *)({staging} + {lay['mult']}u)"
            ctx["rq_shift"] = f"(const uint8_t *)({staging} + {lay['shift']}u)"
            ctx["summary"] += f"; parameters streamed from L3 ({lay['bytes']} B)"
        ctx["summary"] += (f"; {t.n_tiles} L1 tile(s) of {t.tile_rows} x {t.tile_channels}, "
                           f"{t.l1_bytes} B" if t.tiled else f"; untiled ({t.note})")
        ctx["points"] = _point_tables(points, node, prefix, luts, ctx)
        if ctx["points"]:                # the running point's tables (point 0 at start-up)
            ctx["params"]["bias"] = f"{fn}_bias_p0"
            ctx["rq_mult"], ctx["rq_shift"] = f"{fn}_mult_p0", f"{fn}_shift_p0"
        ctx["params"] = list(ctx["params"].items())
    else:
        ctx["points"] = None
    return ctx


def _point_tables(points: PointNetwork | None, node: Node, prefix: str,
                  luts: dict[str, dict[str, Any]], ctx: dict[str, Any]
                  ) -> list[dict[str, Any]] | None:
    """Per operating point, a layer's multiplier, bias and requantisation (None when the layer's
    parameters are the same at every point, or there are no points)."""
    if points is None or not isinstance(node, _Layer) or node.name not in points.varying():
        return None
    if ctx["l3"]:
        raise IRError(f"{node.owner}: its parameters are streamed from L3, which operating "
                      f"points do not support yet; give the target more L2")
    return [{"mul": _multiplier(p[node.name].multiplier, prefix, luts), "bias": p[node.name].bias,
             "requant": _rq(p[node.name].requant)} for p in points.points]


def _parameter_bytes(layers: list[dict[str, Any]], luts: dict[str, dict[str, Any]],
                     cores: int, staging: int) -> int:
    total = staging
    for c in layers:
        if c.get("l3"):
            continue                                # in L3, streamed through the staging buffer
        if c["weight"] is not None:
            total += 0 if c.get("l3_tiles") else c["weight"].size   # streamed per tile
            total += 4 * c["bias"].size
        if c["requant"]:
            total += 5 * c["requant"]["mult"].size
        total += cores * c.get("col_bytes", 0)  # an untiled conv's im2col buffers per core
        if c["mul"] and c["mul"]["kind"] == "blocks":
            total += 28 * len(c["mul"]["per_channel"])  # the nn_mul_t per output channel
    return total + sum(t["table"].size * (2 if t["ctype"] == "int16_t" else 4)
                       for t in luts.values())


def _hwc(a: np.ndarray) -> np.ndarray:
    return a.transpose(1, 2, 0) if a.ndim == 3 else a


def emit(net: Network, out_dir: str | os.PathLike[str], prefix: str = "net",
         reference_input: np.ndarray | None = None, target: Target | None = None,
         points: PointNetwork | None = None) -> Firmware:
    """Write the PMSIS application of ``net`` into ``out_dir``.

    Args:
        net: the integer network (already validated by construction).
        out_dir: the firmware directory (created; stale generated layer files are removed).
        prefix: C identifier prefixed to every global symbol.
        reference_input: one uint8 sample (C, H, W) embedded for the on-target checksum run
            (zeros when None).
        target: target facts (``deploy/data/target.json`` by default).
        points: operating points of ``net`` (``points.network`` must be ``net``): per-point
            tables and ``<prefix>_set_operating_point(i)`` (:mod:`deploy.points`).

    Returns:
        The Firmware record.
    """
    prefix = check_prefix(prefix)
    if points is not None and points.network is not net:
        raise IRError(f"emit({net.name!r}): the operating points belong to another network")
    target = target or default_target()
    shape = net.input.shape
    x = np.zeros(shape, np.uint8) if reference_input is None else np.asarray(reference_input)
    if x.shape != shape:
        raise IRError(f"emit({net.name!r}): reference_input expected shape {shape}, got "
                      f"{x.shape}")
    for node in net.nodes[1:]:
        PULP.lookup(type(node))  # every node can be emitted, before anything runs or is written
    outs = run(net, x[None])
    tiling = plan_tiling(net, target)
    plan = plan_memory(net, target, tiling=tiling)
    cnames = _c_names(net)
    luts: dict[str, dict[str, Any]] = {}
    layers = [_node_context(net, n, cnames, prefix, luts, plan, tiling, points)
              for n in net.nodes]
    for ctx in layers:
        ctx["checksum"] = int(outs[ctx["name"]].astype(np.int64).sum()) % 2**32
    net_ctx = {"name": net.name, "prefix": prefix, "macro": prefix.upper(),
               "guard": f"{prefix.upper()}_NETWORK_H", "layers": layers,
               "input_bytes": int(np.prod(shape)), "input": _hwc(x).ravel(),
               "arena_bytes": plan.arena_bytes, "align": plan.align,
               "staging_bytes": plan.staging_bytes,
               "points": points.n_points if points is not None else 0}
    facts = {"platform": target.platform, "num_cores": target.num_cores,
             "l1_bytes": target.l1_bytes, "csr": f"0x{target.csr_address:X}",
             "enable_bits": target.csr_enable_bits}

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
                    activation_bytes=plan.arena_bytes,
                    parameter_bytes=_parameter_bytes(layers, luts, target.num_cores,
                                                     plan.staging_bytes), plan=plan,
                    tiling=tiling)
